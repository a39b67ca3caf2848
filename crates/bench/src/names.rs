//! Names from many locales, in the script HR systems hold them. Han and kana names carry their
//! romanized form after a `|` (HR systems keep it in a column of its own, which the login rules
//! use); Greek, Cyrillic, Hangul and Latin names with diacritics are left to the login rules'
//! transliteration. The pools are small on purpose: in a large company many people share a name,
//! and unique login generation has to cope.

pub struct Locale {
    /// Relative frequency among the generated persons.
    pub weight: u64,
    pub given: &'static [&'static str],
    pub family: &'static [&'static str],
}

pub const LOCALES: &[Locale] = &[
    Locale {
        // english
        weight: 20,
        given: &[
            "James",
            "Mary",
            "John",
            "Patricia",
            "Robert",
            "Jennifer",
            "Michael",
            "Linda",
            "William",
            "Elizabeth",
            "David",
            "Barbara",
            "Richard",
            "Susan",
            "Joseph",
            "Jessica",
            "Thomas",
            "Sarah",
            "Charles",
            "Karen",
            "Christopher",
            "Nancy",
            "Daniel",
            "Lisa",
            "Matthew",
            "Mary-Kate",
            "Anthony",
            "Margaret",
            "Mark",
            "Zoë",
            "Jo",
            "Al",
        ],
        family: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "Moore",
            "Jackson",
            "Martin",
            "Lee",
            "Thompson",
            "White",
            "Harris",
            "Clark",
            "Lewis",
            "Robinson",
            "O'Brien",
            "O'Neill",
            "McDonald",
            "Smith-Jones",
            "Walker",
            "Young",
            "Allen",
            "King",
            "Wright",
            "Scott",
            "Featherstonehaugh-Cholmondeley",
            "Ng",
        ],
    },
    Locale {
        // german
        weight: 8,
        given: &[
            "Jürgen",
            "Günther",
            "Jörg",
            "Uwe",
            "Björn",
            "Sören",
            "Käthe",
            "Maximilian",
            "Anna-Lena",
            "Lea",
            "Lukas",
            "Hannah",
            "Jonas",
            "Lena",
            "Felix",
            "Mia",
            "Elias",
            "Sophie",
            "Paul",
            "Greta",
        ],
        family: &[
            "Müller",
            "Schäfer",
            "Groß",
            "Weiß",
            "Strauß",
            "Heß",
            "Köhler",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Meyer",
            "Wagner",
            "Becker",
            "Hoffmann",
            "Schulz",
            "Koch",
            "Bauer",
            "Richter",
            "von Weizsäcker",
            "Zur Mühlen",
            "Schmidt-Rottluff",
            "Meißner",
        ],
    },
    Locale {
        // french
        weight: 6,
        given: &[
            "Zoé",
            "Chloé",
            "Léa",
            "Amélie",
            "Hélène",
            "François",
            "Jérôme",
            "Benoît",
            "Gaël",
            "Jean-Pierre",
            "Marie-Thérèse",
            "Anaïs",
            "Loïc",
            "Noël",
            "Cécile",
            "Théo",
        ],
        family: &[
            "Lefèvre",
            "Bélanger",
            "Gauthier",
            "Dupont",
            "Moreau",
            "Laurent",
            "Girard",
            "Mercier",
            "de la Fontaine",
            "D'Alembert",
            "Lemaître",
            "Béranger",
            "Leroy",
            "Roux",
            "Fournier",
            "Saint-Exupéry",
        ],
    },
    Locale {
        // spanish
        weight: 8,
        given: &[
            "José",
            "María",
            "Íñigo",
            "Jesús",
            "Ángel",
            "Sofía",
            "Lucía",
            "Álvaro",
            "Begoña",
            "Maite",
            "Juan Carlos",
            "María José",
            "Raúl",
            "Inés",
        ],
        family: &[
            "García López",
            "Fernández",
            "Muñoz",
            "Peña",
            "Ibáñez",
            "Núñez",
            "Rodríguez-Zapatero",
            "de la Cruz",
            "Martínez",
            "Sánchez",
            "Pérez Galdós",
            "Gómez",
            "Díaz",
            "Hernández",
            "Jiménez",
            "Ruiz",
        ],
    },
    Locale {
        // portuguese
        weight: 3,
        given: &["João", "Conceição", "Luís", "Inês", "Gonçalo", "Sebastião", "Ana", "Tiago"],
        family: &["Gonçalves", "Simões", "Magalhães", "Araújo", "da Silva", "dos Santos", "Conceição", "Brandão"],
    },
    Locale {
        // nordic
        weight: 4,
        given: &[
            "Søren", "Bjørn", "Ægir", "Åsa", "Øystein", "Þór", "Guðrún", "Signe", "Linnéa", "Mikael", "Ása", "Jón",
        ],
        family: &[
            "Kjærsgaard",
            "Ødegård",
            "Sæther",
            "Jørgensen",
            "Åström",
            "Öberg",
            "Lindqvist",
            "Sigurðsson",
            "Jónsdóttir",
            "Hæstad",
            "Østergaard",
            "Nyström",
        ],
    },
    Locale {
        // polish
        weight: 4,
        given: &[
            "Łukasz",
            "Małgorzata",
            "Wojciech",
            "Zbigniew",
            "Krzysztof",
            "Agnieszka",
            "Bożena",
            "Józef",
            "Żaneta",
            "Paweł",
        ],
        family: &[
            "Łukasiewicz",
            "Wiśniewski",
            "Wójcik",
            "Kowalczyk",
            "Zając",
            "Żuraw",
            "Grzegorczyk",
            "Szczepański",
            "Kamiński",
            "Brzęczyszczykiewicz",
            "Dąbrowska",
            "Gałązka",
        ],
    },
    Locale {
        // czech-hungarian
        weight: 2,
        given: &["Jiří", "Tomáš", "Kateřina", "Šárka", "Őrs", "Zsófia", "Gergő", "Ágnes"],
        family: &["Dvořák", "Novák", "Procházka", "Růžička", "Černý", "Szűcs", "Kovács", "Tóth", "Nagy"],
    },
    Locale {
        // turkish
        weight: 4,
        given: &["Ömer", "Çağla", "Şule", "İsmail", "Gül", "Ayşe", "Oğuz", "Işıl", "Mehmet", "Gökhan"],
        family: &["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Doğan", "Aydın", "Yıldız", "Özdemir"],
    },
    Locale {
        // vietnamese
        weight: 3,
        given: &["Anh", "Dũng", "Hương", "Thảo", "Phương", "Đức", "Tuấn", "Thị Hương", "Văn Minh", "Ngọc Ánh"],
        family: &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"],
    },
    Locale {
        // greek
        weight: 2,
        given: &["Γιώργος", "Μαρία", "Δημήτρης", "Ελένη", "Νίκος", "Κατερίνα", "Χρήστος", "Σοφία"],
        family: &["Παπαδόπουλος", "Παπαδοπούλου", "Οικονόμου", "Γεωργίου", "Νικολάου", "Καραγιάννης", "Βλάχος"],
    },
    Locale {
        // cyrillic
        weight: 4,
        given: &["Александр", "Наталья", "Дмитрий", "Ольга", "Сергей", "Юлия", "Андрій", "Олена", "Євген", "Ксения"],
        family: &["Иванов", "Смирнова", "Кузнецов", "Попова", "Шевченко", "Ковальчук", "Щербаков", "Соловьёва"],
    },
    Locale {
        // chinese
        weight: 7,
        given: &[
            "伟|Wei",
            "芳|Fang",
            "娜|Na",
            "秀英|Xiuying",
            "敏|Min",
            "静|Jing",
            "丽|Li",
            "强|Qiang",
            "磊|Lei",
            "军|Jun",
            "洋|Yang",
            "艳|Yan",
            "子涵|Zihan",
            "浩然|Haoran",
        ],
        family: &[
            "王|Wang",
            "李|Li",
            "张|Zhang",
            "刘|Liu",
            "陈|Chen",
            "杨|Yang",
            "黄|Huang",
            "赵|Zhao",
            "吴|Wu",
            "周|Zhou",
            "欧阳|Ouyang",
            "司马|Sima",
        ],
    },
    Locale {
        // japanese
        weight: 3,
        given: &[
            "翔|Sho",
            "蓮|Ren",
            "陽翔|Haruto",
            "結衣|Yui",
            "さくら|Sakura",
            "美咲|Misaki",
            "大輔|Daisuke",
            "健太|Kenta",
        ],
        family: &[
            "佐藤|Sato",
            "鈴木|Suzuki",
            "高橋|Takahashi",
            "田中|Tanaka",
            "伊藤|Ito",
            "渡辺|Watanabe",
            "山本|Yamamoto",
            "中村|Nakamura",
            "小林|Kobayashi",
        ],
    },
    Locale {
        // korean
        weight: 2,
        given: &["민준", "서연", "지호", "하은", "도윤", "서준"],
        family: &["김", "이", "박", "최", "정", "강"],
    },
    Locale {
        // arabic
        weight: 4,
        given: &["Mohammed", "Ahmed", "Fatima", "Aisha", "Omar", "Yousef", "Layla", "Khaled", "Noor", "Abdel Aziz"],
        family: &[
            "Al-Sayed",
            "El-Amin",
            "Abdullah",
            "Al Hashimi",
            "Haddad",
            "Khoury",
            "Al-Masri",
            "Abdel-Rahman",
            "Ben Ali",
            "Al Farsi",
        ],
    },
    Locale {
        // indian
        weight: 7,
        given: &["Priya", "Rahul", "Aarav", "Ananya", "Vikram", "Lakshmi", "Arjun", "Deepa", "Sai Krishna", "Ravi"],
        family: &[
            "Sharma",
            "Patel",
            "Singh",
            "Kumar",
            "Reddy",
            "Iyer",
            "Venkataraghavan",
            "Subramanian",
            "Gupta",
            "Chandrasekharan",
        ],
    },
    Locale {
        // irish-dutch
        weight: 4,
        given: &["Seán", "Siobhán", "Niamh", "Aoife", "Joost", "Sanne", "Maarten", "IJsbrand"],
        family: &[
            "O'Sullivan",
            "Ó Briain",
            "Mac Giolla Phádraig",
            "Ní Bhriain",
            "van der Berg",
            "de Vries",
            "van Dijk",
            "Bakker",
        ],
    },
];

/// A name as HR holds it and its romanized form (empty when the name needs none).
pub fn split(name: &'static str) -> (&'static str, &'static str) {
    name.split_once('|').unwrap_or((name, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_and_kana_names_carry_a_romanized_form_and_others_none() {
        let unreliable = |s: &str| s.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF | 0x4E00..=0x9FFF));
        for locale in LOCALES {
            for name in locale.given.iter().chain(locale.family) {
                let (native, latin) = split(name);
                assert_eq!(unreliable(native), !latin.is_empty(), "{name}");
                assert!(!native.trim().is_empty());
            }
        }
    }
}
