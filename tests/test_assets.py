import hashlib
import json
import shutil
from pathlib import Path

from conftest import ROOT
from tokenizers import Tokenizer

import tooling.assets as assets_module
from tooling.assets import STARCODER_SPECIAL_TOKENS, build_assets


def test_assets_are_deterministic_and_recorded(workspace, tmp_path, monkeypatch):
    # The quality classifiers are one function over five languages' data, and training and
    # quantizing them is most of a build (some 90 s): one is built again, the others' files are
    # the session's, so the record still lists them all.
    def build_quality_classifier(language, output):
        if language == "vi":
            return build_quality_classifier_once(language, output)
        shutil.copytree(workspace / "assets" / "quality", Path(output) / "quality", dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if not n.startswith(f"{language}.")])
        return json.loads((workspace / "assets" / "quality" / f"{language}.card.json").read_text())

    build_quality_classifier_once = assets_module.build_quality_classifier
    monkeypatch.setattr(assets_module, "build_quality_classifier", build_quality_classifier)
    record, built = build_assets(str(tmp_path), kenlm_cache=str(ROOT / "assets" / "kenlm"))
    assert built
    first = json.loads((workspace / "assets" / "assets.json").read_text())
    assert record["files"] == first["files"]  # same bytes as the session's build
    for name, entry in record["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == entry["sha256"]
        assert entry["made_by"]
    assert build_assets(str(tmp_path), kenlm_cache=str(ROOT / "assets" / "kenlm"))[1] is False  # up to date


def test_tokenizer_is_starcoder_style(workspace):
    tokenizer = Tokenizer.from_file(str(workspace / "assets" / "tokenizer.json"))
    assert [tokenizer.id_to_token(i) for i in range(len(STARCODER_SPECIAL_TOKENS))] == STARCODER_SPECIAL_TOKENS
    assert tokenizer.token_to_id("<|endoftext|>") == 0
    for text in ("def f(x):\n    return x ** 2\n", "Tiếng Việt", "हिन्दी", "日本語のテキスト", "päivää 2024"):
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids) == text
    # Digits are split one by one, as in StarCoder.
    assert tokenizer.encode("2024").tokens == ["2", "0", "2", "4"]
