"""Business operations on validated data; they return documents or raise ``ApiError``."""
