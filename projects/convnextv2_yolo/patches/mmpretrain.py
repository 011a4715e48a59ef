"""mmpretrain 1.2.0 with transformers >= 5 installed."""


def skip_mmpretrain_multimodal_on_new_transformers() -> None:
    """Keep ``import mmpretrain.models`` working when transformers >= 5 is installed.

    Upstream defect: ``mmpretrain.models`` (1.2.0) imports its multi-modal
    models (BLIP, Flamingo, ...) whenever transformers is installed
    (``mmpretrain.utils.dependency.WITH_MULTIMODAL``), and with transformers
    >= 5 that import crashes.
    The package uses none of them: mmpretrain registers its placeholders instead.

    Applies to: mmpretrain 1.2.0 with transformers >= 5 (a no-op otherwise).
    """
    import importlib.metadata as md
    try:
        major = int(md.version('transformers').split('.')[0])
    except (md.PackageNotFoundError, ValueError):
        return
    if major >= 5:
        import mmpretrain.utils.dependency as dependency
        dependency.WITH_MULTIMODAL = False
