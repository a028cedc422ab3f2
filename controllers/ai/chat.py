"""Free-form questions to the assistant (the seed's Gemini chat)."""
from services import gemini

SYSTEM_INSTRUCTION = (
    "You are the assistant of a CRM used by marketers: customers, their orders, audience segments "
    "built from rules, and message campaigns. Help with marketing tasks for this CRM: audience ideas, "
    "campaign messages, timing, and reading campaign results. You cannot see or change the CRM's "
    "data; say so when asked to. Be concise and practical."
)


def ask(prompt):
    """Answer a marketer's free-form question."""
    return gemini.generate(prompt, system=SYSTEM_INSTRUCTION)
