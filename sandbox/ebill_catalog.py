"""Reference data of the sandbox hospital: issuing points, charge items, and fake payers.

Everything here is invented but shaped like a Guangdong county hospital's data (province code 44,
梅州 region codes), so that format checks (GB 11643 ID numbers, mobile numbers, bill codes) have
something real-looking to pass or fail on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

PROVINCE = "44"  # 广东; DQ01 accepts 11-15, 21-23, 31-37, 41-46, 50-54, 61-65


@dataclass(frozen=True)
class Place:
    code: str
    name: str
    vendor_type: str  # the vendor's place_type: 1 门诊 2 住院 3 挂号 4 体检 5 自助机
    dept: str
    active: bool = True


PLACES = [
    Place("MZ01", "门诊收费1号窗口", "1", "门诊收费处"),
    Place("MZ02", "门诊收费2号窗口", "1", "门诊收费处"),
    Place("MZ03", "门诊收费3号窗口", "1", "门诊收费处"),
    Place("JZ01", "急诊收费窗口", "1", "急诊科"),
    Place("GH01", "挂号窗口", "3", "门诊部"),
    Place("ZZ01", "门诊大厅自助机1", "5", "信息科"),
    Place("ZZ02", "门诊大厅自助机2", "5", "信息科"),
    Place("ZY01", "住院结算处", "2", "住院收费处"),
    Place("TJ01", "体检中心收费处", "4", "体检中心"),
    Place("MZ09", "门诊收费9号窗口(停用)", "1", "门诊收费处", active=False),
]

# visit type -> (share of bills, bus_type, HIS serial prefix, [(place, weight)])
VISITS = {
    "O": (0.55, "02", "MZ", [("MZ01", 3), ("MZ02", 3), ("MZ03", 2), ("ZZ01", 1), ("ZZ02", 1)]),
    "R": (0.18, "06", "GH", [("GH01", 3), ("ZZ01", 1), ("ZZ02", 1)]),
    "E": (0.07, "03", "JZ", [("JZ01", 1)]),
    "I": (0.08, "01", "ZY", [("ZY01", 1)]),
    "C": (0.12, "05", "TJ", [("TJ01", 1)]),
}
# Refunds are made at a cashier's window, never at a self-service machine.
REFUND_PLACE = {"ZZ01": "MZ01", "ZZ02": "MZ02"}


def bill_code(visit_type: str, year: int) -> str:
    """票据代码: province(2) + region(2) + kind(2: 01 门诊 / 02 住院) + year(2)."""
    return f"{PROVINCE}01{'02' if visit_type == 'I' else '01'}{year % 100:02d}"


# charge_code -> [(item_code, item_name, unit, std in 1/10000 yuan, med_ins_class)]
ITEMS = {
    "01": [("110900001", "普通病房床位费", "日", 400000, "1")],
    "02": [("110200001", "普通门诊诊察费", "次", 100000, "1"), ("110200002", "副主任医师诊察费", "次", 250000, "1"),
           ("110200003", "主任医师诊察费", "次", 350000, "2")],
    "03": [("210102015", "胸部DR摄影", "次", 800000, "1"), ("220201001", "彩色多普勒超声常规检查", "部位", 1200000, "1"),
           ("210300001", "X线计算机体层(CT)平扫", "部位", 1800000, "2"), ("310701001", "常规心电图检查", "次", 250000, "1")],
    "04": [("250101001", "血常规", "次", 200000, "1"), ("250301001", "肝功能", "项", 450000, "1"),
           ("250305001", "血糖测定", "项", 80000, "1"), ("250102035", "尿常规", "次", 120000, "1"),
           ("250403001", "乙型肝炎两对半", "次", 600000, "2")],
    "05": [("120400001", "静脉输液", "次", 120000, "1"), ("120400002", "肌肉注射", "次", 40000, "1"),
           ("340100001", "普通针刺", "次", 300000, "1"), ("440000001", "推拿治疗", "次", 400000, "2")],
    "06": [("311201001", "清创缝合术", "次", 2000000, "1"), ("330100001", "阑尾切除术", "次", 12000000, "1")],
    "07": [("120100001", "一级护理", "日", 300000, "1"), ("120100002", "二级护理", "日", 200000, "1")],
    "08": [("C0001", "一次性输液器", "套", 35000, "2"), ("C0002", "医用纱布", "包", 28000, "3"),
           ("C0003", "一次性注射器", "支", 6000, "3")],
    "09": [("X0001", "阿莫西林胶囊", "盒", 125000, "1"), ("X0002", "头孢克肟分散片", "盒", 286000, "2"),
           ("X0003", "0.9%氯化钠注射液", "袋", 43000, "1"), ("X0004", "布洛芬缓释胶囊", "盒", 158000, "1"),
           ("X0005", "奥美拉唑肠溶胶囊", "盒", 224000, "2"), ("X0006", "硝苯地平控释片", "盒", 332000, "1")],
    "10": [("Z0001", "黄芪", "克", 1250, "1"), ("Z0002", "当归", "克", 3500, "1"), ("Z0003", "甘草", "克", 800, "1")],
    "11": [("Y0001", "复方丹参滴丸", "盒", 260000, "1"), ("Y0002", "连花清瘟胶囊", "盒", 148000, "2")],
    "12": [("110200005", "一般诊疗费", "次", 100000, "1")],
    "13": [("110100001", "挂号费", "次", 10000, "1")],
    "14": [("990000001", "病历本工本费", "本", 10000, "3")],
}

# med_care_type -> weight among patients
MED_CARE_TYPES = [("01", 35), ("02", 14), ("90", 15), ("07", 28), ("03", 2), ("04", 2), ("05", 1), ("06", 1), ("99", 2)]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余叶钟温古"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华建国志红玲文辉婷雪梅金凤春兰德福海燕思远嘉怡子涵浩然"
COMPANIES = ["梅州市嘉应建筑工程有限公司", "梅江区第一中学", "广东客都物流有限公司", "梅县区人民政府机关事务局",
             "梅州市华侨实业有限公司", "兴宁市供电局"]
REGIONS = ["441402", "441403", "441422", "441423", "441424", "441426", "441427", "441481", "445202", "440106"]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of an 18-character citizen ID number."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def fake_id_card(rng: random.Random) -> str:
    year = rng.randint(1938, 2023)
    body = f"{rng.choice(REGIONS)}{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    return body + id_check_digit(body)


def fake_tel(rng: random.Random) -> str:
    return "1" + rng.choice("3578") + rng.choice("0123456789") + f"{rng.randint(0, 99999999):08d}"


def fake_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2, 2))))


def fake_patient(rng: random.Random, index: int) -> tuple[str, str, str | None, str | None, str]:
    """(patient_id, name, id_card_no or None, tel or None, med_care_type)."""
    id_card = fake_id_card(rng) if rng.random() < 0.9 else None
    tel = fake_tel(rng) if rng.random() < 0.85 else None
    mct = rng.choices([m for m, _ in MED_CARE_TYPES], [w for _, w in MED_CARE_TYPES])[0]
    return f"P{index:09d}", fake_name(rng), id_card, tel, mct


def daily_use_by_place(bills_per_day: int) -> dict[str, float]:
    """Average bills a day per issuing point (refunds add ~2 % at the windows)."""
    out: dict[str, float] = {}
    for share, _, _, places in VISITS.values():
        total_w = sum(w for _, w in places)
        for code, w in places:
            out[code] = out.get(code, 0.0) + bills_per_day * share * w / total_w * 1.02
    return out


def current_codes(year: int) -> dict[str, str]:
    """The bill code each active issuing point issues from in `year`."""
    out = {}
    for v, (_, _, _, places) in VISITS.items():
        for code, _ in places:
            out[code] = bill_code(v, year)
    return out
