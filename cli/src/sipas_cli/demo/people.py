"""Synthetic people for the demo's frames: Vietnamese names, phones and addresses that look real.

Family names follow their rough national frequencies (Nguyễn about four in ten), with the southern
spellings Huỳnh and Võ where Hoàng and Vũ are the northern ones; middle and given names depend on
sex. Phones are mobiles of the real network prefixes, written the several ways people write them (the
frame upload brings them to one form); organisations are companies and cooperatives. None of these
people exists: every frame row is made up from the lists below and a seeded random generator.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass

FAMILY = [("Nguyễn", 38), ("Trần", 11), ("Lê", 9.5), ("Phạm", 7), ("Hoàng", 5), ("Phan", 4.5), ("Vũ", 4),
          ("Đặng", 2.1), ("Bùi", 2), ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1), ("Lý", 0.5),
          ("Đinh", 0.5), ("Trịnh", 0.4), ("Đoàn", 0.4), ("Lương", 0.3), ("Mai", 0.3), ("Tạ", 0.2)]
SOUTHERN = {"Hoàng": "Huỳnh", "Vũ": "Võ"}
MIDDLE = {"male": ["Văn", "Văn", "Đức", "Minh", "Quang", "Hữu", "Thanh", "Công", "Xuân", "Ngọc", "Duy", "Tuấn"],
          "female": ["Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Bích", "Hồng", "Phương", "Mỹ"]}
GIVEN = {"male": ["Hùng", "Dũng", "Nam", "Tuấn", "Minh", "Hải", "Long", "Sơn", "Thắng", "Phong", "Trung", "Hiếu",
                  "Khoa", "Bảo", "Đạt", "Quân", "Huy", "Tùng", "Cường", "Thành", "Phúc", "Lộc", "Vinh", "Khánh"],
         "female": ["Lan", "Hương", "Hoa", "Mai", "Linh", "Trang", "Thảo", "Ngọc", "Hà", "Huyền", "Nhung", "Yến",
                    "Phương", "Thủy", "Vy", "Anh", "Hằng", "Giang", "Oanh", "Nga", "Trâm", "Diệp", "My", "Châu"]}
MOBILE = ["032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098",  # Viettel
          "081", "082", "083", "084", "085", "088", "091", "094",                              # Vinaphone
          "070", "076", "077", "078", "079", "089", "090", "093", "056", "058"]                # MobiFone, others
STREETS = ["Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
           "Phan Chu Trinh", "Điện Biên Phủ", "Nguyễn Huệ", "Hùng Vương", "Lê Duẩn", "Nguyễn Du",
           "Bà Triệu", "Trần Phú", "Phạm Văn Đồng", "Võ Thị Sáu"]
HAMLETS = ["Thôn Đông", "Thôn Tây", "Thôn Trung", "Thôn Bắc Sơn", "Thôn Tân Lập", "Thôn Hòa Bình", "Ấp 2", "Ấp Mới",
           "Bản Nà", "Tổ dân phố 3", "Tổ dân phố 7", "Xóm Chùa"]
COMPANY = ["Công ty TNHH Thương mại {0}", "Công ty Cổ phần Xây dựng {0}", "Hợp tác xã Nông nghiệp {0}",
           "Công ty TNHH Dịch vụ {0}", "Doanh nghiệp tư nhân {0}"]
COMPANY_WORDS = ["An Phát", "Hưng Thịnh", "Minh Long", "Phú Gia", "Thành Công", "Đại Việt", "Hoàng Long",
                 "Tân Tiến", "Bình Minh", "Sao Mai", "Kim Ngân", "Trường Sơn"]
FRAME_HEADER = ["agency_code", "procedure", "service_field", "dossier_id", "completed_on", "respondent_type",
                "name", "phone", "address"]


@dataclass(frozen=True)
class Procedure:
    name: str
    field: str


def person_name(rng: random.Random, southern: bool) -> str:
    family = rng.choices([f for f, _ in FAMILY], weights=[w for _, w in FAMILY])[0]
    if southern:
        family = SOUTHERN.get(family, family)
    sex = rng.choice(("male", "female"))
    return f"{family} {rng.choice(MIDDLE[sex])} {rng.choice(GIVEN[sex])}"


def phone(rng: random.Random) -> str:
    """A mobile number, written as people write them: 0912 345 678, +84 912345678, 091.234.5678 …"""
    prefix, rest = rng.choice(MOBILE), f"{rng.randrange(10**7):07d}"
    digits = prefix + rest
    return rng.choice([digits, f"{digits[:4]} {digits[4:7]} {digits[7:]}", f"+84 {digits[1:]}",
                       f"{digits[:3]}.{digits[3:6]}.{digits[6:]}", f"0084 {digits[1:4]}-{digits[4:]}"])


def address(rng: random.Random, commune: str, province: str, urban: bool) -> str:
    if urban:
        return f"Số {rng.randint(1, 280)}, ngõ {rng.randint(1, 120)} {rng.choice(STREETS)}, {commune}, {province}"
    return f"{rng.choice(HAMLETS)}, {commune}, {province}"


def frame_csv(rng: random.Random, *, tag: str, province: str, province_name: str, southern: bool,
              agencies: list[tuple[str, list[Procedure], int]], communes: list[str],
              window: tuple[dt.date, dt.date], flawed: int = 3) -> str:
    """A province's frame: for each (agency code, its procedures, dossiers) that many completed dossiers,
    and ``flawed`` rows a
    real list would have (a malformed phone, a repeated dossier, a date outside the frame window) that
    the upload must refuse row by row while keeping the rest."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FRAME_HEADER)
    days = (window[1] - window[0]).days
    rows: list[list[str]] = []
    for code, procedures, count in agencies:
        for i in range(count):
            proc = rng.choice(procedures)
            organisation = rng.random() < 0.1
            name = rng.choice(COMPANY).format(rng.choice(COMPANY_WORDS)) if organisation else person_name(rng, southern)
            commune = rng.choice(communes)
            reach = rng.random()
            rows.append([code, proc.name, proc.field, f"{tag}-{code}-{i + 1:05d}",
                         (window[0] + dt.timedelta(days=rng.randrange(days + 1))).isoformat(),
                         "tổ chức" if organisation else "cá nhân", name,
                         "" if reach < 0.06 else phone(rng),
                         address(rng, commune, province_name, urban=rng.random() < 0.6) if reach < 0.5 else ""])
    writer.writerows(rows)
    late = (window[1] + dt.timedelta(days=20)).isoformat()
    bad = [[*rows[0][:7], "091-ABC-1234", ""],                                    # malformed phone
           rows[1][:],                                                            # the same dossier twice
           [*rows[2][:3], f"{tag}-{rows[2][0]}-late", late, *rows[2][5:]]]       # completed after the window
    bad[0][3] = f"{tag}-{rows[0][0]}-badphone"
    writer.writerows(bad[:flawed])
    return out.getvalue()
