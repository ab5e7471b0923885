"""Label cells: one class name, or several separated by "|" (multi-label rows)."""

SEPARATOR = "|"


def split_labels(label, separator=SEPARATOR):
    """Splits a multi-label string such as `"joy|surprise"`: stripped, sorted, unique.

    Args:
        label: str or None. One record's label; `None` gives `()`.
        separator: str. What separates the labels.

    Example:
    >>> split_labels(" surprise|joy||joy ")
    ('joy', 'surprise')
    """
    if label is None:
        return ()
    return tuple(sorted({part.strip() for part in str(label).split(separator)} - {""}))


def labels_of(label, multi_label=False):
    """The class names one label cell names: the cell itself, or its `|`-separated parts.

    Args:
        label: str or None. A record's `label` field.
        multi_label: bool. Read the cell as `|`-separated labels.

    Example:
    >>> labels_of("joy|surprise"), labels_of("joy|surprise", multi_label=True)
    (('joy|surprise',), ('joy', 'surprise'))
    """
    if label is None:
        return ()
    return split_labels(label) if multi_label else (label,)


def class_names_from(labels, multi_label=False):
    """Sorted class names of a split's label cells (multi-label: the union of their parts).

    Example:
    >>> class_names_from(["joy|surprise", "anger"], multi_label=True)
    ['anger', 'joy', 'surprise']
    """
    return sorted({name for label in labels for name in labels_of(label, multi_label)})
