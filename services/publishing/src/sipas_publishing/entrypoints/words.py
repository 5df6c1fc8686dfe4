"""The report's words, Vietnamese first: one table for the pages and the PDF."""

from __future__ import annotations

from typing import Literal

WORDS = {
    "vi": {"title": "Chỉ số hài lòng về sự phục vụ hành chính", "releases": "Các kỳ công bố",
           "national": "Chỉ số toàn quốc", "ranking": "Xếp hạng tỉnh, thành phố", "province": "Tỉnh, thành phố",
           "agency": "Cơ quan", "index": "Chỉ số", "ci": "Khoảng tin cậy 95%", "rank": "Hạng",
           "rank_range": "Khoảng hạng", "n": "Số phiếu", "suppressed": "không đủ mẫu",
           "complementary": "ẩn để bảo vệ số liệu", "factors": "Theo yếu tố", "download": "Tải về",
           "retracted": "Đã thu hồi", "superseded": "Đã được đính chính bởi", "agencies": "Các cơ quan",
           "none": "Chưa có kỳ công bố nào.", "back": "Quay lại", "other": "English",
           "yoy": "So sánh với năm", "change": "Thay đổi", "restated": "tính lại theo địa giới mới",
           "restated_note": "Số liệu năm trước được tính lại theo địa giới hành chính hiện nay (sáp nhập từ "
                            "01/7/2025): cộng dồn phiếu của các tỉnh cũ", "split": "tỉnh cũ được chia tách",
           "from": "từ", "published": "Công bố", "release": "Kỳ công bố", "page": "Trang",
           "signed": "ký số", "key": "khoá",
           "verify": "Tệp kỳ công bố đã ký (Ed25519) kiểm tra được ngoại tuyến: sipas publishing verify-release"},
    "en": {"title": "Citizen satisfaction with public administration (SIPAS)", "releases": "Releases",
           "national": "National index", "ranking": "Province ranking", "province": "Province", "agency": "Agency",
           "index": "Index", "ci": "95% confidence interval", "rank": "Rank", "rank_range": "Rank range",
           "n": "Ballots", "suppressed": "insufficient sample", "complementary": "hidden to protect other figures",
           "factors": "By factor", "download": "Download", "retracted": "Retracted",
           "superseded": "Corrected by", "agencies": "Agencies", "none": "Nothing published yet.", "back": "Back",
           "other": "Tiếng Việt", "yoy": "Compared with", "change": "Change",
           "restated": "restated on today's provinces",
           "restated_note": "Earlier figures restated on today's provinces (merged from 1 July 2025) by pooling "
                            "the ballots of the former provinces", "split": "former province was split",
           "from": "from", "published": "Published", "release": "Release", "page": "Page",
           "signed": "signed", "key": "key",
           "verify": "The signed release file (Ed25519) can be checked offline: sipas publishing verify-release"},
}
Lang = Literal["vi", "en"]
