"""The AI assistant. The model gets only what a request needs and never any write access.

Whatever the model writes is checked by the server before anyone sees it: rules by the same schema as
rules a user writes, messages by the same template check as a campaign's message, summaries for
numbers the statistics do not contain.

- ``chat``: free-form questions;
- ``insights``: the best send time and campaign summaries, from numbers the database computes;
- ``compose``: segment rules from a description, message variants;
- ``flows``: a lifecycle flow from a description, saved as a draft (never activated).
"""
from controllers.ai.chat import ask
from controllers.ai.compose import message_variants, segment_rules
from controllers.ai.flows import draft_flow
from controllers.ai.insights import campaign_summary, send_time

__all__ = ["ask", "campaign_summary", "draft_flow", "message_variants", "segment_rules", "send_time"]
