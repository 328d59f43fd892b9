"""Every filter of a curation recipe, in run order: its config class names its recipe section and
makes its steps (`filters.base.FilterConfig`). The recipe loader reads each section through it,
curate makes the filter pass's steps from it, refilter replays them, and the signals schema and
basis are theirs, in this order. A new filter is its own file and one line here.

The URL lists go first (a look-up per document: a blocked site's pages need no language ID);
the quality classifier after the rules and perplexity, on what they leave (as DCLM scores what
its heuristics keep); decontamination last of the filters, on the documents that passed
everything else; then PII redaction, which rewrites a code file.
"""

from filters.base import FilterConfig
from filters.code import CodeConfig
from filters.decontamination import DecontaminationConfig
from filters.flagged_words import FlaggedWordsConfig
from filters.heuristics import HeuristicsConfig
from filters.language_id import LanguageIDConfig
from filters.perplexity import PerplexityConfig
from filters.pii import PIIConfig
from filters.quality import QualityConfig
from filters.url import URLFilterConfig

FILTERS: tuple[type[FilterConfig], ...] = (
    URLFilterConfig,
    LanguageIDConfig,
    CodeConfig,
    HeuristicsConfig,
    FlaggedWordsConfig,
    PerplexityConfig,
    QualityConfig,
    DecontaminationConfig,
    PIIConfig,
)

# The order of the filters' parts in a manifest's signals basis (`FilterConfig.basis`), which
# manifests wrote before the registry: kept, so that a recipe's manifest keeps its bytes (a
# stage records its pools' manifest sha256). A filter not named here comes after, in run order.
BASIS_ORDER = ("code", "lid_model", "heuristics", "perplexity", "url_filter", "flagged_words", "decontamination")
