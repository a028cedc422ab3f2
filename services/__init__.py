"""Wrappers around outside systems (Google sign-in, later Gemini and messaging vendors)."""
