
from tasks.core.masking import mask_email, mask_id_card, mask_name, mask_phone, mask_row, mask_text
from tasks.core.results import CheckResult, Status, grade, run_failed, verdict


def test_personal_columns_are_masked():
    row = {"bill_no": "0000012345", "payer_name": "欧阳娜娜", "id_card_no": "11010519491231002X",
           "tel": "13812345678", "email": "zhang.san@163.com"}
    m = mask_row(row)
    assert m["bill_no"] == "0000012345"
    assert m["payer_name"] == "欧***"
    assert m["id_card_no"] == "110*************2X"
    assert m["tel"] == "138****5678"
    assert m["email"] == "z***@163.com"
    assert mask_name("张三") == "张*" and mask_phone(None) is None and mask_id_card("") == ""
    assert mask_email("x") == "*"


def test_free_text_is_scanned_but_bill_keys_survive():
    text = ("payer id 11010519491231002X called from +8613812345678, mail a.b@qq.com; "
            "bill 12002601 0000012345 at 20261126123456")
    out = mask_text(text)
    assert "11010519491231002X" not in out and "13812345678" not in out and "a.b@qq.com" not in out
    assert "12002601 0000012345" in out and "20261126123456" in out


def test_check_result_masks_raw_and_reason():
    r = CheckResult(check="x", title="t", site="s", status=Status.OK, raw="tel 13912345678", reason="id 110105194912310021")
    assert "13912345678" not in r.raw and "110105194912310021" not in r.reason


def test_verdict_is_worst_and_skipped_never_passes():
    mk = lambda s: CheckResult(check="x", title="t", site="s", status=s)
    assert verdict([mk(Status.OK), mk(Status.WARN)]) == Status.WARN
    assert verdict([mk(Status.OK), mk(Status.SKIPPED)]) == Status.SKIPPED
    assert verdict([mk(Status.FAIL), mk(Status.ERROR)]) == Status.ERROR
    assert verdict([]) == Status.SKIPPED
    assert run_failed(Status.FAIL) and run_failed(Status.ERROR)
    assert not run_failed(Status.WARN) and not run_failed(Status.OK)


def test_grade_boundaries():
    assert grade(79.9, 80, 90) == Status.OK
    assert grade(80, 80, 90) == Status.WARN
    assert grade(90, 80, 90) == Status.FAIL
    assert grade(20, 30, 15, higher_is_worse=False) == Status.WARN
    assert grade(10, 30, 15, higher_is_worse=False) == Status.FAIL
