"""The audience rule language: value coercion and compilation to MongoDB queries (pure code)."""
from segments.compiler import (
    FIELDS,
    GROUP_OPERATORS,
    MAX_RULES,
    OPERATORS,
    OPERATORS_BY_TYPE,
    RuleError,
    as_group,
    check_tree,
    coerce_value,
    compile_group,
    compile_rule,
    compile_rules,
    path_text,
    rule_errors,
)

__all__ = [
    "FIELDS", "GROUP_OPERATORS", "MAX_RULES", "OPERATORS", "OPERATORS_BY_TYPE", "RuleError", "as_group",
    "check_tree", "coerce_value", "compile_group", "compile_rule", "compile_rules", "path_text", "rule_errors",
]
