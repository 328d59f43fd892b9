"""PII redaction for code (after BigCode's StarCoder PII pipeline): e-mail addresses, public IP
addresses and secrets become `<EMAIL>`, `<IP_ADDRESS>` and `<KEY>`; each replacement is counted.

The patterns are written to leave alone what only looks similar in code: decorators
(`@property`), matrix products (`a@b.T`, `x@self.w`), version numbers (`version 1.2.3.4`),
private, loopback, multicast and reserved addresses (`127.0.0.1`, `10.0.0.1`, `255.255.255.0`),
networks (`224.0.0.0/4`), and names
of secrets that are not literal values (`token = get_token()`, `password = ""`).
"""

import ipaddress
from collections import Counter
from dataclasses import dataclass

import regex
from datatrove.pipeline.base import PipelineStep

from core.errors import AuroraError
from core.ledger import write_task_record
from filters.base import FilterConfig, RecipeContext, StepContext

EMAIL = regex.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?!self\.|cls\.)(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
IPV4 = regex.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
SECRETS = [
    regex.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    regex.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),  # GitHub token
    regex.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),  # Slack token
    regex.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API key
    regex.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", regex.DOTALL),
]
# A literal value of 16 or more key characters assigned to a name that says it is a secret. The
# match starts at the keyword and its runs are possessive: a leading `[\w-]*` made long lines of
# word characters and dashes quadratic (a 1 MB file took minutes).
ASSIGNED_SECRET = regex.compile(
    r"(?i)(?:api[_-]?key|secret|token|passwd|password)[\w-]*+[\"']?\s*+[:=]\s*+[\"']([A-Za-z0-9_\-+/=]{16,})[\"']"
)


def _is_public_ip(match: regex.Match) -> bool:
    before = match.string[max(0, match.start() - 24) : match.start()].lower()
    if "version" in before or before.endswith("v") or match.string.startswith("/", match.end()):
        return False  # a version number, or a network in CIDR notation
    try:
        address = ipaddress.ip_address(match.group())
    except ValueError:  # an octet above 255
        return False
    return address.is_global and not address.is_multicast


def redact(text: str) -> tuple[str, Counter]:
    """The text with PII replaced, and how many of each kind were replaced."""
    counts = Counter()

    def replace(kind, placeholder, keep=lambda m: True):
        def sub(match):
            if not keep(match):
                return match.group()
            counts[kind] += 1
            return placeholder

        return sub

    for pattern in SECRETS:
        text = pattern.sub(replace("key", "<KEY>"), text)

    def assigned(match):
        counts["key"] += 1
        start, end = match.span(1)
        return match.group()[: start - match.start()] + "<KEY>" + match.group()[end - match.start() :]

    text = ASSIGNED_SECRET.sub(assigned, text)
    text = EMAIL.sub(replace("email", "<EMAIL>"), text)
    text = IPV4.sub(replace("ip_address", "<IP_ADDRESS>", _is_public_ip), text)
    return text, counts


class PIIRedactor(PipelineStep):
    """A formatter: rewrites each document's text and counts the replacements per kind."""

    name = "🕵️ PII redaction"
    type = "✂️ - FORMAT"

    def __init__(self, output_folder):
        super().__init__()
        self.output_folder = output_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        totals = Counter()
        for doc in data:
            doc.text, counts = redact(doc.text)
            if counts:
                doc.metadata["pii_redacted"] = dict(counts)
                totals.update(counts)
                for kind, n in counts.items():
                    self.stat_update(f"redacted_{kind}", value=n)
            yield doc
        write_task_record(self.output_folder, rank, "pii", {"redacted": dict(sorted(totals.items()))})


@dataclass(frozen=True)
class PIIConfig(FilterConfig):
    """`code.redact_pii` of the code recipe (false by default): redaction runs last, on the files
    that passed every filter, so what is checked and decontaminated is what was written."""

    section = "code"
    languages = ("code",)
    redact: bool

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "PIIConfig":
        redact = (data.get(cls.section) or {}).get("redact_pii", False)  # the section's keys: `filters.code.CodeConfig`
        if not isinstance(redact, bool):
            raise AuroraError(f"{recipe.path}: 'code.redact_pii' must be true or false")
        return cls(redact)

    def steps(self, context: StepContext) -> list:
        return [PIIRedactor(context.folder)] if self.redact else []

    def basis(self, sha256) -> dict:
        return {"code": {"redact_pii": self.redact}}
