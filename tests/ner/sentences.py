"""Hand-written multilingual sentences for NER tests (not taken from any corpus)."""

SENTENCES = [
    "Angela Merkel met Emmanuel Macron in Paris on Monday.",
    "The U.S. and the E.U. agreed, said Mr. O'Neil of Acme Corp. in New York.",
    "Владимир Путин посетил Москву и встретился с представителями «Газпрома».",
    "在盾的四周是威斯特法倫的王冠。",
    "北京大学位于中国北京市海淀区，成立于1898年。",
    "ذهب محمد إلى القاهرة لزيارة جامعة الأزهر يوم الخميس.",
    "Café déjà vu à Zürich: Ångström, Łódź, São Paulo et Málaga ! 😀",
    "Die Deutsche Bahn fährt von München über Nürnberg nach Berlin Hauptbahnhof.",
    "!!! ... ??? ,,, ---",
    "Emoji 🎉🎉 party at Google HQ with Sundar Pichai 👍 and friends",
    "La Organización Mundial de la Salud publicó un informe sobre España y Portugal.",
    "Koning Willem-Alexander opende het nieuwe museum in Amsterdam-Noord.",
    "Prezydent Andrzej Duda spotkał się z Nigelem Farage'em w Warszawie.",
    "x",
    "東京都の小池百合子知事は、記者会見でトヨタ自動車について話した。",
    "The committee led by Dr. Jane Goodall, Prof. Alan Turing and Sir Tim Berners-Lee met in Geneva, "
    "Switzerland, at the headquarters of the World Health Organization and of CERN, before travelling "
    "to Lyon, Marseille, Nice and Monaco for a week of talks with the International Red Cross and "
    "the European Space Agency about satellites, vaccines and the climate.",
    "Барак Обама, Джо Байден, Дональд Трамп и Хиллари Клинтон обсуждали в Вашингтоне вопросы "
    "НАТО, ООН и Евросоюза вместе с послами Германии, Франции, Италии, Испании и Польши, а затем "
    "вылетели в Нью-Йорк на заседание Генеральной Ассамблеи.",
    "¿Dónde está la Biblioteca Nacional? — preguntó María José en Buenos Aires.",
]

EXTRA_TEXTS = [
    "Reuters reported that Microsoft, Apple and Amazon shares rose in Tokyo and London trading.",
    "Der Bundestag in Berlin stimmte am Donnerstag über das Gesetz ab.",
    "Москва, Санкт-Петербург и Новосибирск — крупнейшие города России.",
    "中华人民共和国国务院总理在上海会见了联合国秘书长。",
    "المملكة العربية السعودية والإمارات العربية المتحدة ومصر",
]

WORD_LISTS = [
    ["Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Paris", "."],
    ["U.S.", "officials", "visited", "Zürich", "and", "São", "Paulo"],
    ["Владимир", "Путин", "посетил", "Москву"],
    ["在", "盾", "的", "四周"],
]
