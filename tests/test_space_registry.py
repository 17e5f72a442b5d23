"""The API every registered search space offers (spec section 8), parametrised over the
registry."""

from __future__ import annotations

import numpy as np
import pytest

from nasheur.spaces import get_space, space_names


@pytest.mark.parametrize("name", space_names())
@pytest.mark.parametrize(
    ("macro", "error", "said"),
    [
        ({"layers": 0}, ValueError, "layers must be an integer >= 1, not 0"),
        ({"layers": -1}, ValueError, "layers must be an integer >= 1, not -1"),
        ({"channels": 2.5}, ValueError, "channels must be an integer >= 1, not 2.5"),
        ({"num_classes": 0}, ValueError, "num_classes must be an integer >= 1, not 0"),
        ({"num_classes": True}, ValueError, "num_classes must be an integer >= 1, not True"),
        ({"stacks": 2}, TypeError, "macro settings ['stacks']; known: "),
    ],
)
def test_standalone_refuses_a_macro_setting_it_cannot_build(name, macro, error, said):
    # NB101 with layers=0 used to build, and fail only in its forward pass (a classifier
    # expecting 4C features); each space names itself and the setting
    space = get_space(name)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(error) as caught:
        space.standalone(arch, **macro)
    assert said in str(caught.value) and name in str(caught.value)


@pytest.mark.parametrize("name", space_names())
def test_standalone_takes_numpy_integers_as_counts(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(0))
    net = space.standalone(arch, num_classes=np.int64(5))
    assert list(net.parameters())[-1].shape == (5,)  # the classifier's bias
