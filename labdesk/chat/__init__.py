"""Chat with a model: sessions, token-aware history, streaming replies, saved conversations."""

from labdesk.chat.chatter import Chatter, StreamingEngine
from labdesk.chat.history import fit_history
from labdesk.chat.session import (
    ChatSession,
    Turn,
    list_sessions,
    load_session,
    save_session,
)
from labdesk.models.chat_template import LAB_CHAT_TEMPLATE, ChatFormat, derive_chat_format

__all__ = [
    "LAB_CHAT_TEMPLATE",
    "ChatFormat",
    "ChatSession",
    "Chatter",
    "StreamingEngine",
    "Turn",
    "derive_chat_format",
    "fit_history",
    "list_sessions",
    "load_session",
    "save_session",
]
