"""The model card (``MODEL_CARD.md``) of a model trained with napari-binseg."""

import json


def starting_model_kept(training, *, written=True):
    """The sentence telling that no epoch of a fine-tune beat its starting model (epoch 0).

    Parameters
    ----------
    training : dict
        The ``training`` section of a model config whose ``init_kept`` is true.
    written : bool
        Whether the model was written to a folder (else only returned).
    """
    start, *epochs = training["history"]
    later = f"; best later epoch {max(h['val_f1'] for h in epochs):.4f}" if epochs else ""
    return (
        f"no epoch beat the starting model (validation F1@0.5 {start['val_f1']:.4f} at "
        f"epoch 0{later}) by more than its standard error on "
        f"{training['validation']['nuclei']} validation nuclei "
        f"({training['init_margin']:.4f}); the model {'written' if written else 'returned'} "
        "is the starting model, unchanged"
    )


def _cell(value, fmt):
    return "-" if value is None else fmt.format(value)


def history_table(history):
    """Markdown table of the validation records (``val_loss`` and per-image F1 when present);
    epoch 0, the starting model of a fine-tune, has no train loss."""
    if not history:
        return ""
    columns = [("epoch", "epoch", "{}"), ("step", "step", "{}")]
    columns += [("train_loss", "train loss", "{:.4f}"), ("val_loss", "val loss", "{:.4f}")]
    columns += [("val_f1", "val F1@0.5", "{:.4f}")]
    columns += [("val_f1_per_image", "val F1@0.5 per image", "{:.4f}")]
    columns += [("minutes", "minutes", "{:.1f}")]
    columns = [c for c in columns if all(c[0] in h for h in history)]
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "---|" * len(columns)
    rows = ["| " + " | ".join(_cell(h[k], f) for k, _, f in columns) + " |" for h in history]
    return "\n".join([head, rule, *rows])


def _input(config):
    norm = config["normalization"]
    return (
        f"One channel; each 2D plane normalized by its {norm['low']} and {norm['high']} "
        f"intensity percentiles. Post-processing: {json.dumps(config['postprocess'])}."
    )


def _training(config):
    tr = config["training"]
    opts = tr["config"]
    validation = tr["validation"]
    if tr.get("stopped_by") == "non-finite loss":
        ended = "stopped early because the training loss became NaN or infinite"
    else:
        ended = f"ended by {tr['stopped_by']}"
    if tr.get("init_kept"):
        best = "N" + starting_model_kept(tr)[1:]
    else:
        best = f"Best epoch at step {tr['best_step']}, validation F1@0.5 {tr['best_val_f1']:.4f}"
    scales = tr["data"].get("scales") or []
    at = ", ".join(f"{scales.count(s)} at {s:g}x" for s in sorted(set(scales)))
    if at:  # older configs have no scales
        at = (
            f" Planes trained at the scale segment() runs them at for a reference nucleus "
            f"of {config['postprocess']['diameter']} px: {at}."
        )
    return (
        f"{tr['data']['planes']} annotated plane(s), {tr['data']['nuclei']} nuclei; "
        f"validation: {validation['planes']} plane(s) ({validation['source']}).{at} Loss "
        f"{opts['loss']}, AdamW lr {opts['lr']}, batch {opts['batch_size']} of "
        f"{opts['patch_size']}-pixel patches, augmentations "
        f"{', '.join(opts['augment']) or 'none'}, seed {opts['seed']}. "
        f"{tr['steps_done']} steps ({tr['minutes']:.1f} min, {ended}). {best}.\n\n"
        + history_table(tr["history"])
    )


def _limitations(config):
    return (
        "Validation scores come from the user's own few annotated planes; check the model "
        "on images it was not trained on before relying on it."
    )


#: Default sections of :func:`model_card`, by heading, in order.
SECTIONS = {"Input": _input, "Training": _training, "Limitations": _limitations}


def model_card(config, *, title=None, summary=None, sections=None):
    """A Markdown model card of a model trained by :func:`napari_binseg.train`.

    Parameters
    ----------
    config : dict
        The model's ``config.json`` content (with its ``training`` section).
    title : str, optional
        First heading; default ``"<name>: U-Net trained with napari-binseg"``.
    summary : str, optional
        The paragraph under the title; default: the network and its two outputs.
    sections : dict, optional
        ``{heading: Markdown text}``: a heading of the default sections (``Input``,
        ``Training``, ``Limitations``) replaces it, others are added before ``Limitations``
        in the given order.

    Returns
    -------
    text : str
    """
    tr = config["training"]
    start = f"fine-tuned from `{tr['init']}`" if tr.get("init") else "trained from scratch"
    title = title or f"{config['name']}: U-Net trained with napari-binseg"
    summary = summary or (
        f"A MONAI `{config['network']['name']}` ({start}) predicting two sigmoid channels, "
        "nucleus **foreground** and **centre**; `napari_binseg.segment` grows centre seeds "
        "through the foreground into instances. Architecture and options: `config.json`; "
        "weights: `model.safetensors`."
    )
    sections = dict(sections or {})
    parts = {h: sections.pop(h, None) or write(config) for h, write in SECTIONS.items()}
    limitations = parts.pop("Limitations")
    parts |= sections
    parts["Limitations"] = limitations
    body = "\n\n".join(f"## {heading}\n{text.strip()}" for heading, text in parts.items())
    return f"# {title}\n\n{summary.strip()}\n\n{body}\n"
