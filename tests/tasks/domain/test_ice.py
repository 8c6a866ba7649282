import pytest

from tasks.domain.ice import class_names, ice_classes, to_model_target


def test_five_classes_with_a_binary_merge():
    classes = ice_classes()
    assert [c.code for c in classes] == [1, 2, 3, 4, 5]
    assert classes[0].name == "water" and classes[0].binary_code == 0
    assert {c.binary_name for c in classes[1:]} == {"ice"}
    assert class_names("five_class") == [c.name for c in classes]
    assert class_names("binary") == ["water", "ice"]


def test_model_targets_per_scheme():
    assert [to_model_target(c.code, "five_class") for c in ice_classes()] == [0, 1, 2, 3, 4]
    assert [to_model_target(c.code, "binary") for c in ice_classes()] == [0, 1, 1, 1, 1]


def test_unknown_code_and_scheme_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"allowed: \[1, 2, 3, 4, 5\]"):
        to_model_target(9, "five_class")
    with pytest.raises(ValueError, match="five_class"):
        class_names("three_class")
