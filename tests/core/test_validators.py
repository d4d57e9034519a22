"""One rule for what is a number in user input, shared by the readers, the engine and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labeldesk.core.errors import InputError
from labeldesk.core.validation.metrics import from_coco
from labeldesk.core.validators import is_int, is_number, parse_number


@pytest.mark.parametrize(
    ("value", "number", "integer"),
    [
        (3, True, True),
        (2.5, True, False),
        (np.int64(3), True, True),
        (np.float32(2.5), True, False),
        (True, False, False),  # a bool in a file is a mistake, not 1
        (np.bool_(True), False, False),
        (float("nan"), False, False),
        (float("inf"), False, False),
        (np.float64("nan"), False, False),
        ("3", False, False),
        (None, False, False),
        (1 + 2j, False, False),
    ],
)
def test_what_counts_as_a_number(value, number, integer) -> None:
    assert is_number(value) is number
    assert is_int(value) is integer


def test_text_fields_hold_finite_numbers_only() -> None:
    assert parse_number(" 0.25 ") == 0.25
    assert parse_number("1e3") == 1000.0
    for text in ("nan", "inf", "-inf", "1e999", "", "0.5.1", "abc"):
        assert parse_number(text) is None


def test_the_metric_engine_refuses_a_bool_in_a_box() -> None:
    # numpy read [1, True, 3, 4] as integers, so from_coco took the bool for 1 (the importer
    # and the evaluation refused it).

    gt = {
        "images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.png"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, True, 3, 4]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    with pytest.raises(InputError, match="not valid"):
        from_coco(gt, [])


def test_it_imports_without_numpy() -> None:
    code = "import sys, labeldesk.core.validators; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "argv",
    [
        ("queue", "--iou", "nan"),
        ("validate", "--predictions", "p.json", "--max-drop", "inf"),
        ("prelabel", "--model", "m", "--conf", "1e999"),
    ],
)
def test_numeric_options_refuse_what_is_not_a_finite_number(argv, capsys) -> None:
    from labeldesk.cli.main import main

    # argparse's type=float took "nan" and "inf"; now the option says what is wrong (status 2)
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    assert "invalid number value" in capsys.readouterr().err
