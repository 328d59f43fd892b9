"""The end of a training stage: a PNG of the curves and a one-screen summary."""


def plot_curves(records: list[dict], validation: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, (loss_ax, lr_ax, val_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    loss_ax.plot(steps, [r["loss"] for r in records])
    loss_ax.set(title="training loss", xlabel="step")
    lr_ax.plot(steps, [r["lr"] for r in records], color="tab:orange")
    lr_ax.set(title="learning rate", xlabel="step")
    languages = sorted(validation["start"])
    x = range(len(languages))
    val_ax.bar([i - 0.2 for i in x], [validation["start"][lang] for lang in languages], width=0.4, label="start")
    if "end" in validation:
        val_ax.bar([i + 0.2 for i in x], [validation["end"][lang] for lang in languages], width=0.4, label="end")
    val_ax.set_xticks(list(x), languages)
    val_ax.set(title="validation loss per language")
    val_ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary(config, manifest: dict, records: list[dict], validation: dict, final: str) -> str:
    last = records[-1] if records else {}
    tokens = last.get("tokens", {})
    total = sum(tokens.values()) or 1
    by_language = {}
    for c in manifest["components"]:
        by_language[c["language"]] = by_language.get(c["language"], 0) + c["share"]
    lines = [
        f"stage {config.name}: {last.get('step', 0)} steps, {total:,} tokens trained, final loss {last.get('loss', float('nan')):.4f}",
        f"{'language':<10} {'tokens':>12} {'share':>8} {'planned':>8} {'val loss start':>15} {'end':>8}",
    ]
    for language in sorted(by_language):
        start = validation["start"].get(language, float("nan"))
        end = validation.get("end", {}).get(language, float("nan"))
        lines.append(f"{language:<10} {tokens.get(language, 0):>12,} {tokens.get(language, 0) / total:>8.1%} "
                     f"{by_language[language]:>8.1%} {start:>15.4f} {end:>8.4f}")
    lines.append(f"model: {final} (Hugging Face format); log: {config.output}/train.jsonl; curves: {config.output}/curves.png")
    return "\n".join(lines)
