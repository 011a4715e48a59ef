"""Which class names a trained model's label indices stand for."""
import logging
from typing import Optional, Sequence, Tuple

from mmengine.logging import print_log


def checkpoint_classes(checkpoint_meta: Optional[dict]) -> Optional[Tuple[str, ...]]:
    """The class names a checkpoint was trained with: its ``meta.dataset_meta.classes`` (key
    case-insensitive; mmengine's runs and our converter write it) or mmdet 2.x's ``meta.CLASSES``;
    None when it names none."""
    meta = checkpoint_meta or {}
    dataset_meta = {str(k).lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
    names = dataset_meta.get('classes') or meta.get('CLASSES')
    return tuple(str(n) for n in names) if names else None


def resolve_class_names(checkpoint_meta: Optional[dict], config_classes: Optional[Sequence[str]],
                        num_classes: int) -> Tuple[Tuple[str, ...], str]:
    """Class names for label indices ``0 .. num_classes - 1``, and where they came from.

    Label ``i`` of a model means the ``i``-th class of the dataset it was
    trained on, which mmengine stores in the checkpoint (``meta.dataset_meta``).
    In order of trust: the checkpoint's ``dataset_meta.classes`` (a warning
    when the config lists other names or another order), the config's
    ``classes``, COCO's 80 names for an 80-class model, ``class0``... (each
    fallback with a warning). mmdet's inferencer falls back to COCO's names
    for any model without checkpoint names, which mislabels every picture of
    a custom-class model.

    Args:
        checkpoint_meta (dict, optional): The checkpoint's ``meta``.
        config_classes (Sequence[str], optional): ``metainfo.classes`` of the
            config's test dataset.
        num_classes (int): The head's number of classes.

    Returns:
        tuple: ``(names, source)``, source one of 'checkpoint', 'config',
        'coco', 'generic'.

    Raises:
        ValueError: the checkpoint's names do not match ``num_classes``.
    """
    ckpt_classes = checkpoint_classes(checkpoint_meta)
    config_classes = tuple(config_classes) if config_classes else None
    if ckpt_classes:
        ckpt_classes = tuple(ckpt_classes)
        if len(ckpt_classes) != num_classes:
            raise ValueError(f'the checkpoint names {len(ckpt_classes)} classes {ckpt_classes} but the model has '
                             f'{num_classes}: is the config the one the checkpoint was trained with?')
        if config_classes and config_classes != ckpt_classes:
            print_log(f'class names: the checkpoint was trained with {ckpt_classes}, the config lists '
                      f'{config_classes}; labels are named after the checkpoint', logger='current',
                      level=logging.WARNING)
        return ckpt_classes, 'checkpoint'
    if config_classes and len(config_classes) == num_classes:
        return config_classes, 'config'
    if num_classes == 80:
        from mmdet.evaluation import get_classes
        print_log('class names: neither the checkpoint nor the config names the classes; using COCO\'s',
                  logger='current', level=logging.WARNING)
        return tuple(get_classes('coco')), 'coco'
    print_log(f'class names: neither the checkpoint nor the config names the {num_classes} classes; '
              'using class0, class1, ...', logger='current', level=logging.WARNING)
    return tuple(f'class{i}' for i in range(num_classes)), 'generic'


def as_class_names(classes, source: str = 'metainfo.classes') -> Tuple[str, ...]:
    """Class names as a tuple of distinct strings, or a clear error.

    Args:
        classes: A list or tuple of names.
        source (str): What to call them in messages.

    Raises:
        TypeError: a single string (``('cat')`` is the string 'cat', not a
            tuple) or not a sequence of strings.
        ValueError: empty, or a name repeated.
    """
    if isinstance(classes, str):
        raise TypeError(f"{source} must be a sequence of names, got the string {classes!r}; "
                        f"for one class write ({classes!r}, ) or [{classes!r}]")
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise TypeError(f'{source} must be a list or tuple of names (strings), got {classes!r}')
    if not classes:
        raise ValueError(f'{source} is empty')
    repeated = sorted({c for c in classes if list(classes).count(c) > 1})
    if repeated:
        raise ValueError(f'{source} repeats {repeated}: each class name must appear once')
    return tuple(classes)
