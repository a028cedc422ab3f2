"""The audience rule language: value coercion and compilation to MongoDB queries (pure code)."""
from segments.compiler import (
    FIELDS,
    OPERATORS,
    RuleError,
    coerce_value,
    compile_rule,
    compile_rules,
)

__all__ = ["FIELDS", "OPERATORS", "RuleError", "coerce_value", "compile_rule", "compile_rules"]
