"""Access control and request hardening: roles, the policy table, sessions, API keys, CSRF, headers."""
