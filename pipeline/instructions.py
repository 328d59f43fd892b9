"""Instruction and safety records -> text, for the CAT stage.

A record is single-turn, `{"prompt": ..., "response": ...}`, or multi-turn,
`{"messages": [{"role": "system" | "user" | "assistant", "content": ...}, ...]}`. Each is
rendered with one plain-text template (no special tokens, so any tokenizer takes it):

    ### System:            (only when the conversation has a system message first)
    <content>

    ### User:
    <content>

    ### Assistant:
    <content>

turns separated by a blank line. Files are read by the ordinary reader with whole records
(`readers.records.RawDocumentReader`: jsonl, jsonl.gz, jsonl.zst, parquet), so broken JSON and
invalid UTF-8 are counted as malformed, as in curation; `RenderInstructions` then makes each
record the document's text, or removes it with the reason it cannot be rendered.
"""

from filters.base import RecordedFilter

HEADERS = {"system": "### System:", "user": "### User:", "assistant": "### Assistant:"}


def _turns(record: dict) -> tuple[list[tuple[str, str]] | None, str | None]:
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            return None, "messages_not_a_list"
        turns = []
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                return None, "message_without_text"
            if message.get("role") not in HEADERS:
                return None, "unknown_role"
            turns.append((message["role"], message["content"]))
        return turns, None
    if "prompt" in record or "response" in record:
        if not isinstance(record.get("prompt"), str) or not isinstance(record.get("response"), str):
            return None, "prompt_or_response_not_text"
        return [("user", record["prompt"]), ("assistant", record["response"])], None
    return None, "neither_prompt_nor_messages"


def render(record) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason the record is rejected)."""
    if not isinstance(record, dict):
        return None, "not_an_object"
    turns, reason = _turns(record)
    if reason:
        return None, reason
    if any(not content.strip() for _, content in turns):
        return None, "empty_turn"
    roles = [role for role, _ in turns]
    if "system" in roles[1:]:
        return None, "system_not_first"
    conversation = [r for r in roles if r != "system"]
    if conversation[:1] != ["user"] or conversation[-1] != "assistant" or any(
        a == b for a, b in zip(conversation, conversation[1:])
    ):
        return None, "turns_not_alternating"
    return "\n\n".join(f"{HEADERS[role]}\n{content.strip()}" for role, content in turns), None


class RenderInstructions(RecordedFilter):
    """Each record the reader carries whole becomes its document's text; a record that cannot be
    rendered is removed with its reason, its text the record as read (nothing is lost)."""

    name = "💬 Render instructions"
    step = "instructions"

    def filter(self, doc) -> bool | tuple[bool, str]:
        record = doc.metadata.pop("record")
        if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"]:
            doc.id = record["id"]
        text, reason = render(record)
        if reason is not None:
            return False, reason
        doc.text = text
        return True
