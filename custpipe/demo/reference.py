"""Static reference data for the demo generator (cities, name parts, code sets)."""

from __future__ import annotations

LOCALES = ("zh_CN", "en_US", "de_DE")
LOCALE_WEIGHTS = (0.4, 0.3, 0.3)
COUNTRY_OF_LOCALE = {"zh_CN": "CN", "en_US": "US", "de_DE": "DE"}
CURRENCY_OF_COUNTRY = {"CN": "CNY", "US": "USD", "DE": "EUR"}

# (city, region, postcode low, postcode high, landline area codes)
CITIES: dict[str, list[tuple[str, str, int, int, tuple[str, ...]]]] = {
    "CN": [
        ("北京市", "北京市", 100000, 102699, ("10",)),
        ("上海市", "上海市", 200000, 202199, ("21",)),
        ("广州市", "广东省", 510000, 511499, ("20",)),
        ("深圳市", "广东省", 518000, 518199, ("755",)),
        ("杭州市", "浙江省", 310000, 311399, ("571",)),
        ("南京市", "江苏省", 210000, 211399, ("25",)),
        ("苏州市", "江苏省", 215000, 215699, ("512",)),
        ("成都市", "四川省", 610000, 611799, ("28",)),
        ("武汉市", "湖北省", 430000, 431499, ("27",)),
        ("天津市", "天津市", 300000, 301899, ("22",)),
        ("重庆市", "重庆市", 400000, 409999, ("23",)),
        ("西安市", "陕西省", 710000, 710399, ("29",)),
        ("青岛市", "山东省", 266000, 266799, ("532",)),
        ("宁波市", "浙江省", 315000, 315899, ("574",)),
        ("福州市", "福建省", 350000, 350399, ("591",)),
    ],
    "DE": [
        ("Berlin", "Berlin", 10115, 14199, ("30",)),
        ("Hamburg", "Hamburg", 20095, 22769, ("40",)),
        ("München", "Bayern", 80331, 81929, ("89",)),
        ("Köln", "Nordrhein-Westfalen", 50667, 51149, ("221",)),
        ("Frankfurt am Main", "Hessen", 60306, 60599, ("69",)),
        ("Stuttgart", "Baden-Württemberg", 70173, 70629, ("711",)),
        ("Düsseldorf", "Nordrhein-Westfalen", 40210, 40629, ("211",)),
        ("Leipzig", "Sachsen", 4103, 4357, ("341",)),
        ("Dresden", "Sachsen", 1067, 1328, ("351",)),
        ("Hannover", "Niedersachsen", 30159, 30669, ("511",)),
        ("Nürnberg", "Bayern", 90402, 90491, ("911",)),
        ("Bremen", "Bremen", 28195, 28779, ("421",)),
    ],
    "US": [
        ("New York", "NY", 10001, 10292, ("212", "646")),
        ("Los Angeles", "CA", 90001, 90089, ("213", "323")),
        ("Chicago", "IL", 60601, 60661, ("312", "773")),
        ("Houston", "TX", 77001, 77099, ("713", "832")),
        ("Phoenix", "AZ", 85001, 85055, ("602",)),
        ("Philadelphia", "PA", 19102, 19154, ("215", "267")),
        ("San Francisco", "CA", 94102, 94134, ("415",)),
        ("Seattle", "WA", 98101, 98199, ("206",)),
        ("Boston", "MA", 2108, 2137, ("617",)),
        ("Atlanta", "GA", 30301, 30380, ("404",)),
        ("Denver", "CO", 80201, 80239, ("303",)),
        ("Miami", "FL", 33101, 33199, ("305",)),
    ],
}
POSTCODE_WIDTH = {"CN": 6, "DE": 5, "US": 5}
# administrative division codes used in CN unified social credit codes, per city above
CN_DIVISION = [
    "110105",
    "310115",
    "440106",
    "440305",
    "330106",
    "320102",
    "320505",
    "510107",
    "420106",
    "120101",
    "500103",
    "610113",
    "370202",
    "330203",
    "350102",
]
PHONE_CC = {"CN": "86", "DE": "49", "US": "1"}
CN_MOBILE_PREFIXES = ("135", "136", "137", "138", "139", "150", "151", "186", "188", "189")
DE_MOBILE_PREFIXES = ("151", "152", "157", "160", "170", "171", "172", "176", "177", "179")

# Chinese name parts with pinyin (used for e-mail addresses and web domains)
ZH_FAMILY = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("高", "gao"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
]
ZH_GIVEN = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("华", "hua"),
    ("建", "jian"),
    ("志", "zhi"),
    ("海", "hai"),
    ("燕", "yan"),
    ("晓", "xiao"),
    ("东", "dong"),
    ("玉", "yu"),
    ("兰", "lan"),
    ("文", "wen"),
    ("博", "bo"),
    ("子", "zi"),
    ("涵", "han"),
    ("浩", "hao"),
    ("然", "ran"),
    ("欣", "xin"),
    ("怡", "yi"),
    ("宇", "yu"),
    ("婷", "ting"),
    ("鹏", "peng"),
]
ZH_BRAND = [
    ("华", "hua"),
    ("泰", "tai"),
    ("盛", "sheng"),
    ("鑫", "xin"),
    ("恒", "heng"),
    ("达", "da"),
    ("宏", "hong"),
    ("远", "yuan"),
    ("嘉", "jia"),
    ("瑞", "rui"),
    ("东", "dong"),
    ("方", "fang"),
    ("金", "jin"),
    ("龙", "long"),
    ("天", "tian"),
    ("安", "an"),
    ("新", "xin"),
    ("创", "chuang"),
    ("博", "bo"),
    ("源", "yuan"),
    ("中", "zhong"),
    ("星", "xing"),
    ("银", "yin"),
    ("海", "hai"),
    ("誉", "yu"),
    ("汇", "hui"),
    ("通", "tong"),
    ("永", "yong"),
    ("佳", "jia"),
    ("德", "de"),
]

# industry code -> (CRM label, zh name word, zh pinyin, de word, us word)
INDUSTRIES = [
    ("Technology", "科技", "tech", "Software", "Technologies"),
    ("Manufacturing", "机械", "jixie", "Maschinenbau", "Manufacturing"),
    ("Electronics", "电子", "dianzi", "Elektrotechnik", "Electronics"),
    ("Transportation", "物流", "wuliu", "Logistik", "Logistics"),
    ("Retail", "贸易", "maoyi", "Handel", "Trading"),
    ("Chemicals", "化工", "huagong", "Chemie", "Chemicals"),
    ("Healthcare", "医药", "yiyao", "Medizintechnik", "Health"),
    ("Food & Beverage", "食品", "shipin", "Lebensmittel", "Foods"),
    ("Construction", "建材", "jiancai", "Bau", "Building Supply"),
    ("Consulting", "咨询", "zixun", "Beratung", "Consulting"),
]

# legal form key -> (canonical text, variants); joined to the base without a space for zh
LEGAL_FORMS = {
    "zh_ltd": ("有限公司", ("有限责任公司", "有限責任公司", "(有限公司)")),
    "zh_jsc": ("股份有限公司", ("股份公司", "股份有限责任公司")),
    "de_gmbh": ("GmbH", ("G.m.b.H.", "Gesellschaft mit beschränkter Haftung", "Gmbh", "GMBH")),
    "de_ag": ("AG", ("Aktiengesellschaft", "A.G.")),
    "us_inc": ("Inc.", ("Incorporated", "Inc", "INC.")),
    "us_llc": ("LLC", ("L.L.C.", "Limited Liability Company", "llc")),
    "us_ltd": ("Ltd.", ("Limited", "Ltd", "LTD")),
}
LEGAL_FORMS_BY_COUNTRY = {
    "CN": (("zh_ltd", "zh_jsc"), (0.75, 0.25)),
    "DE": (("de_gmbh", "de_ag"), (0.8, 0.2)),
    "US": (("us_inc", "us_llc", "us_ltd"), (0.5, 0.35, 0.15)),
}

FREE_MAIL = {
    "CN": ("qq.com", "163.com", "126.com", "sina.com"),
    "DE": ("gmx.de", "web.de", "t-online.de", "gmail.com"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "aol.com"),
}
COMPANY_TLD = {"CN": ".com.cn", "DE": ".de", "US": ".com"}
COMPANY_MAILBOX = ("info", "sales", "contact", "office", "service")

TIERS = ("A", "B", "C")
TIER_WEIGHTS = (0.15, 0.35, 0.5)
# system -> (codes for A/B/C, codes outside the code set)
TIER_CODES = {
    "erp": (("01", "02", "03"), ("09", "04", "00", "1")),
    "crm": (("Gold", "Silver", "Bronze"), ("Platinum", "Gold VIP", "Standard")),
    "sales": (("A类", "B类", "C类"), ("D类", "A+类", "VIP")),
    "service": (("VIP", "Standard", "Basic"), ("Premium", "Gold VIP", "Key Account")),
}

# free-text country labels per system
COUNTRY_LABELS = {
    "crm": {
        "CN": (("China", "中国", "PRC"), (0.6, 0.25, 0.15)),
        "DE": (("Germany", "Deutschland"), (0.7, 0.3)),
        "US": (("USA", "United States", "U.S.A."), (0.5, 0.35, 0.15)),
    },
    "sales": {
        "CN": (("中国", "CN"), (0.85, 0.15)),
        "DE": (("德国",), (1.0,)),
        "US": (("美国", "USA"), (0.7, 0.3)),
    },
    "service": {
        "CN": (("CN", "China"), (0.7, 0.3)),
        "DE": (("DE", "Germany"), (0.7, 0.3)),
        "US": (("US", "USA"), (0.7, 0.3)),
    },
}

ERP_STATUS = {"open": "A", "in_progress": "B", "completed": "C", "cancelled": "R"}
ORDER_STATUSES = ("open", "in_progress", "completed", "cancelled")

# SAP-like short region codes (KNA1-REGIO), keyed by clean region name
REGION_CODES = {
    "北京市": "BJ",
    "上海市": "SH",
    "广东省": "GD",
    "浙江省": "ZJ",
    "江苏省": "JS",
    "四川省": "SC",
    "湖北省": "HB",
    "天津市": "TJ",
    "重庆市": "CQ",
    "陕西省": "SN",
    "山东省": "SD",
    "福建省": "FJ",
    "Berlin": "BE",
    "Hamburg": "HH",
    "Bayern": "BY",
    "Nordrhein-Westfalen": "NW",
    "Hessen": "HE",
    "Baden-Württemberg": "BW",
    "Sachsen": "SN",
    "Niedersachsen": "NI",
    "Bremen": "HB",
}
