"""A hand-made multilingual knowledge base for the KB tests (issue 18), built in code.

Two parts:

* ``REAL``: countries, cities, organisations and people with their Wikidata ids and their names in
  four scripts (Latin, Cyrillic, Han, Arabic) plus a few other Latin-script languages (Polish,
  German). Written by hand; the ids are the real Wikidata ones.
* ``namesakes()``: a few hundred made-up people, every first name with every surname, in Latin
  and Cyrillic ("Ivan Petrov" / "Иван Петров", "Anna Petrova" / "Анна Петрова"): namesakes that
  share a surname, so a test sees that an inflected full name ("Ивана Петрова") finds its own
  person and not the other Petrovs.
"""

from __future__ import annotations

from index import KnownEntity

# (external id, label, English, Russian, Chinese, Arabic, other aliases)
REAL: list[tuple[str, str, str, str, str, str, list[str]]] = [
    # cities
    ("Q649", "LOC", "Moscow", "Москва", "莫斯科", "موسكو", ["Moskwa", "Moskau"]),
    ("Q90", "LOC", "Paris", "Париж", "巴黎", "باريس", ["Paryż"]),
    ("Q64", "LOC", "Berlin", "Берлин", "柏林", "برلين", []),
    ("Q84", "LOC", "London", "Лондон", "伦敦", "لندن", ["Londyn"]),
    ("Q270", "LOC", "Warsaw", "Варшава", "华沙", "وارسو", ["Warszawa", "Warschau"]),
    ("Q1490", "LOC", "Tokyo", "Токио", "东京", "طوكيو", ["Tokio"]),
    ("Q956", "LOC", "Beijing", "Пекин", "北京", "بكين", ["Pekin", "Peking"]),
    ("Q85", "LOC", "Cairo", "Каир", "开罗", "القاهرة", ["Kair", "Kairo"]),
    # countries
    ("Q159", "LOC", "Russia", "Россия", "俄罗斯", "روسيا", ["Rosja", "Russland"]),
    ("Q142", "LOC", "France", "Франция", "法国", "فرنسا", ["Francja", "Frankreich"]),
    ("Q183", "LOC", "Germany", "Германия", "德国", "ألمانيا", ["Niemcy", "Deutschland"]),
    ("Q36", "LOC", "Poland", "Польша", "波兰", "بولندا", ["Polska", "Polen"]),
    ("Q148", "LOC", "China", "Китай", "中国", "الصين", ["Chiny"]),
    ("Q17", "LOC", "Japan", "Япония", "日本", "اليابان", ["Japonia"]),
    ("Q79", "LOC", "Egypt", "Египет", "埃及", "مصر", ["Egipt", "Ägypten"]),
    ("Q30", "LOC", "United States", "США", "美国", "الولايات المتحدة", ["USA", "Stany Zjednoczone"]),
    ("Q145", "LOC", "United Kingdom", "Великобритания", "英国", "المملكة المتحدة", ["UK", "Wielka Brytania"]),
    # organisations
    (
        "Q458",
        "ORG",
        "European Union",
        "Европейский союз",
        "欧洲联盟",
        "الاتحاد الأوروبي",
        ["EU", "ЕС", "欧盟", "Unia Europejska"],
    ),  # noqa: E501
    ("Q7184", "ORG", "NATO", "НАТО", "北约", "الناتو", ["North Atlantic Treaty Organization"]),
    ("Q1065", "ORG", "United Nations", "ООН", "联合国", "الأمم المتحدة", ["UN", "ONZ"]),
    # people
    ("Q567", "PER", "Angela Merkel", "Ангела Меркель", "安格拉·默克尔", "أنجيلا ميركل", ["Merkel", "默克尔"]),
    (
        "Q7747",
        "PER",
        "Vladimir Putin",
        "Владимир Путин",
        "弗拉基米尔·普京",
        "فلاديمير بوتين",
        ["Putin", "Путин", "普京", "Władimir Putin"],
    ),  # noqa: E501
    (
        "Q3052772",
        "PER",
        "Emmanuel Macron",
        "Эмманюэль Макрон",
        "埃马纽埃尔·马克龙",
        "إيمانويل ماكرون",
        ["Macron", "Макрон", "马克龙"],
    ),  # noqa: E501
    (
        "Q22686",
        "PER",
        "Donald Trump",
        "Дональд Трамп",
        "唐纳德·特朗普",
        "دونالد ترامب",
        ["Trump", "Трамп", "特朗普"],
    ),
    ("Q61053", "PER", "Olaf Scholz", "Олаф Шольц", "奥拉夫·朔尔茨", "أولاف شولتس", ["Scholz", "Шольц"]),
]

MALE_FIRST = [
    ("Ivan", "Иван"), ("Pavel", "Павел"), ("Nikolai", "Николай"), ("Dmitri", "Дмитрий"),
    ("Andrei", "Андрей"), ("Sergei", "Сергей"), ("Boris", "Борис"), ("Oleg", "Олег"),
    ("Viktor", "Виктор"), ("Mikhail", "Михаил"), ("Yuri", "Юрий"), ("Roman", "Роман"),
]  # fmt: skip
FEMALE_FIRST = [
    ("Anna", "Анна"), ("Olga", "Ольга"), ("Elena", "Елена"), ("Maria", "Мария"),
    ("Irina", "Ирина"), ("Tatiana", "Татьяна"), ("Natalia", "Наталья"), ("Vera", "Вера"),
]  # fmt: skip
SURNAMES = [
    ("Petrov", "Петров"), ("Smirnov", "Смирнов"), ("Volkov", "Волков"), ("Sokolov", "Соколов"),
    ("Morozov", "Морозов"), ("Lebedev", "Лебедев"), ("Kozlov", "Козлов"), ("Novikov", "Новиков"),
    ("Orlov", "Орлов"), ("Belov", "Белов"), ("Zaitsev", "Зайцев"), ("Pavlov", "Павлов"),
]  # fmt: skip


def real() -> list[KnownEntity]:
    """The hand-written entities, names in four scripts."""
    return [
        KnownEntity(
            qid,
            en,
            label,
            [ru, zh, ar, *other],
            description=f"{label} entity {en} (test knowledge base)",
            metadata={"source": "wikidata", "languages": ["en", "ru", "zh", "ar"]},
        )
        for qid, label, en, ru, zh, ar, other in REAL
    ]


def namesakes() -> list[KnownEntity]:
    """Made-up people: every first name with every surname (female surnames take -a / -а)."""
    people = []
    for firsts, ending in ((MALE_FIRST, ("", "")), (FEMALE_FIRST, ("a", "а"))):
        for first_lat, first_cyr in firsts:
            for sur_lat, sur_cyr in SURNAMES:
                latin = f"{first_lat} {sur_lat}{ending[0]}"
                people.append(
                    KnownEntity(
                        "X-" + latin.lower().replace(" ", "-"),
                        latin,
                        "PER",
                        [f"{first_cyr} {sur_cyr}{ending[1]}"],
                        description="a made-up person",
                    )
                )
    return people


def knowledge_base() -> list[KnownEntity]:
    """The whole KB: 25 real entities and 240 namesakes."""
    return real() + namesakes()
