"""This package's own warnings, told apart from other libraries': the widgets show them as
napari notifications and the CLI prints them as one line; other libraries' warnings keep their
usual course."""


def own_warning(category):
    """Whether the warning class ``category`` is napari-binseg's (defined in its modules).

    Examples
    --------
    >>> from napari_binseg.unet.inference import NucleiTooSmall
    >>> own_warning(NucleiTooSmall), own_warning(RuntimeWarning)
    (True, False)
    """
    return category.__module__.split(".")[0] == __name__.split(".")[0]
