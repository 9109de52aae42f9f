//! Identifiers of the IP-loan records: CN patent numbers in every historical form, publication and grant numbers, high-tech enterprise certificates, tech-SME registrations, CNIPA pledge registrations and court case numbers.
//!
//! Like [`crate::ids`], every type here exists only validated: `parse(field,
//! text)` names the field and the broken rule ([`IdError`]), `Display` writes
//! the canonical text, and decoding accepts only the canonical form, so one
//! value has one encoding. Sources of each scheme are in the type's doc and in
//! docs/encoding.md §2.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{IdError, PATENT_WEIGHTS, PatentKind, PatentNumber, digit_value, reject_whitespace};

/// Check character of CNIPA application numbers: Σ dᵢ·wᵢ mod 11 with weights
/// 2,3,4,5,6,7,8,9,2,3,4,5 (the first `digits.len()` of them), 10 → `X`.
fn cn_check(digits: &[u8]) -> u8 {
    let sum = digits.iter().zip(PATENT_WEIGHTS).map(|(&b, w)| digit_value(b) * w).sum::<u32>();
    b"0123456789X"[(sum % 11) as usize]
}

/// Splits an optional `CN` prefix (any case) off `s`.
fn strip_cn(s: &str) -> &str {
    match s.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("CN") => &s[2..],
        _ => s,
    }
}

/// Province-level division codes of GB/T 2260 (mainland).
const PROVINCES: [&[u8; 2]; 31] = [
    b"11", b"12", b"13", b"14", b"15", b"21", b"22", b"23", b"31", b"32", b"33", b"34", b"35", b"36", b"37", b"41",
    b"42", b"43", b"44", b"45", b"46", b"50", b"51", b"52", b"53", b"54", b"61", b"62", b"63", b"64", b"65",
];

fn check_province(field: &'static str, what: &'static str, code: &[u8]) -> Result<(), IdError> {
    if PROVINCES.iter().any(|p| p.as_slice() == code) {
        Ok(())
    } else {
        Err(IdError::Province { field, what, code: String::from_utf8_lossy(code).into_owned() })
    }
}

fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, &b| acc.saturating_mul(10).saturating_add(digit_value(b)))
}

fn all_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

// ---------------------------------------------------------------------------
// Patent application numbers in every form
// ---------------------------------------------------------------------------

const PATENT_REF_FIELD: &str = "patent";

/// A 1989–2003 CN application number: two-digit year (89..99, 00..03), type
/// digit, five-digit serial, then a check character computed like the 12-digit
/// form's over the eight digits (weights 2..9, mod 11, 10 → `X`). Written
/// `CN99100001.6`. Stored as 9 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 9]", into = "[u8; 9]")]
pub struct LegacyPatentNumber([u8; 9]);

impl LegacyPatentNumber {
    fn new(field: &'static str, digits: &[u8], check: u8) -> Result<Self, IdError> {
        let [y0, y1, kind, ..] = *digits else {
            return Err(IdError::PatentForm { field, got: digits.len(), check: "and a check digit" });
        };
        let year = (digit_value(y0) * 10 + digit_value(y1)) as u8;
        if !(year >= 89 || year <= 3) {
            return Err(IdError::PatentFormYear {
                field,
                year,
                form: "8-digit-with-check",
                rule: "filed 1989 to 2003: 89..99 or 00..03; 1985-88 numbers have no check digit",
            });
        }
        if PatentKind::from_digit(kind).is_none() {
            return Err(IdError::PatentType { field, ch: char::from(kind) });
        }
        let expected = cn_check(digits);
        if check != expected {
            return Err(IdError::PatentCheck { field, found: char::from(check), expected: char::from(expected) });
        }
        let mut b = [0u8; 9];
        b[..8].copy_from_slice(digits);
        b[8] = check;
        Ok(Self(b))
    }

    /// Filing year, 1989..=2003.
    pub fn year(&self) -> u16 {
        let yy = number(&self.0[..2]) as u16;
        if yy >= 89 { 1900 + yy } else { 2000 + yy }
    }
}

impl TryFrom<[u8; 9]> for LegacyPatentNumber {
    type Error = IdError;
    fn try_from(b: [u8; 9]) -> Result<Self, IdError> {
        if !all_digits(&b[..8]) || !(b[8].is_ascii_digit() || b[8] == b'X') {
            return Err(IdError::CodeShape {
                field: PATENT_REF_FIELD,
                what: "stored 1989-2003 patent number",
                expected: "8 ASCII digits then 0-9 or X",
            });
        }
        Self::new(PATENT_REF_FIELD, &b[..8], b[8])
    }
}

impl From<LegacyPatentNumber> for [u8; 9] {
    fn from(p: LegacyPatentNumber) -> Self {
        p.0
    }
}

/// A 1985–1988 CN application number: two-digit year (85..88), type digit
/// (1, 2, 3), five-digit serial, no check digit. Written `CN85100001`.
/// Stored as 8 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 8]", into = "[u8; 8]")]
pub struct EarlyPatentNumber([u8; 8]);

impl EarlyPatentNumber {
    /// Filing year, 1985..=1988.
    pub fn year(&self) -> u16 {
        1900 + number(&self.0[..2]) as u16
    }
}

impl TryFrom<[u8; 8]> for EarlyPatentNumber {
    type Error = IdError;
    fn try_from(b: [u8; 8]) -> Result<Self, IdError> {
        let field = PATENT_REF_FIELD;
        if let Some(i) = b.iter().position(|c| !c.is_ascii_digit()) {
            return Err(IdError::PatentChar { field, ch: char::from(b[i]), position: i + 1 });
        }
        let year = number(&b[..2]) as u8;
        if !(85..=88).contains(&year) {
            return Err(IdError::PatentFormYear {
                field,
                year,
                form: "8-digit",
                rule: "filed 1985 to 1988: 85..88; later 8-digit numbers carry a check digit",
            });
        }
        if !matches!(b[2], b'1'..=b'3') {
            return Err(IdError::PatentType { field, ch: char::from(b[2]) });
        }
        Ok(Self(b))
    }
}

impl From<EarlyPatentNumber> for [u8; 8] {
    fn from(p: EarlyPatentNumber) -> Self {
        p.0
    }
}

/// A CN patent application number in any of its forms: the 12+1 form of ZC
/// 0006-2003 (filed since 2003-10-01, [`PatentNumber`]), the 8+1 form of
/// 1989–2003 and the 8-digit form of 1985–1988.
///
/// Binary form: `u32` tag 0, 1 or 2, then 13, 9 or 8 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatentRef {
    Modern(PatentNumber),
    Legacy(LegacyPatentNumber),
    Early(EarlyPatentNumber),
}

impl PatentRef {
    /// Parses `CN200310102344.5`, `CN99100001.6`, `CN85100001`, with or
    /// without `CN` and the `.`; lower case `cn`/`x` accepted.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, "patent application number", s)?;
        let rest = strip_cn(s);
        let (body, check) = match rest.split_once('.') {
            Some((b, c)) => (b, Some(c)),
            None => (rest, None),
        };
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits >= 12 || (body.len() == 13 && check.is_none()) {
            return PatentNumber::parse(field, s).map(PatentRef::Modern);
        }
        // Without a '.', a 9-character body is 8 digits and their check character.
        let (main, check) = match check {
            None if body.len() == 9 && body.is_char_boundary(8) => (&body[..8], Some(&body[8..])),
            c => (body, c),
        };
        let prefix_len = s.len() - rest.len();
        if let Some(i) = main.bytes().position(|c| !c.is_ascii_digit()) {
            let ch = main[i..].chars().next().unwrap_or('?');
            return Err(IdError::PatentChar { field, ch, position: prefix_len + i + 1 });
        }
        match (main.len(), check) {
            (8, Some(c)) => {
                let c = match c.as_bytes() {
                    [b] if b.is_ascii_digit() || b.eq_ignore_ascii_case(&b'x') => b.to_ascii_uppercase(),
                    [b] => return Err(IdError::PatentCheckChar { field, ch: char::from(*b) }),
                    _ => return Err(IdError::PatentCheckLength { field, got: c.chars().count() }),
                };
                LegacyPatentNumber::new(field, main.as_bytes(), c).map(PatentRef::Legacy)
            }
            (8, None) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(main.as_bytes());
                EarlyPatentNumber::try_from(b).map(PatentRef::Early).map_err(|e| with_field(e, field))
            }
            (got, c) => {
                Err(IdError::PatentForm { field, got, check: if c.is_some() { "and a check digit" } else { "" } })
            }
        }
    }

    /// The 12-digit number, if the patent has one.
    pub fn modern(&self) -> Option<&PatentNumber> {
        match self {
            PatentRef::Modern(p) => Some(p),
            _ => None,
        }
    }

    /// Filing year.
    pub fn year(&self) -> u16 {
        match self {
            PatentRef::Modern(p) => p.year(),
            PatentRef::Legacy(p) => p.year(),
            PatentRef::Early(p) => p.year(),
        }
    }
}

/// Re-labels a decode-time error with the caller's field.
fn with_field(e: IdError, field: &'static str) -> IdError {
    match e {
        IdError::PatentChar { ch, position, .. } => IdError::PatentChar { field, ch, position },
        IdError::PatentFormYear { year, form, rule, .. } => IdError::PatentFormYear { field, year, form, rule },
        IdError::PatentType { ch, .. } => IdError::PatentType { field, ch },
        other => other,
    }
}

impl From<PatentNumber> for PatentRef {
    fn from(p: PatentNumber) -> Self {
        PatentRef::Modern(p)
    }
}

impl fmt::Display for PatentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatentRef::Modern(p) => write!(f, "{p}"),
            PatentRef::Legacy(p) => {
                let s = core::str::from_utf8(&p.0).unwrap_or_default();
                write!(f, "CN{}.{}", &s[..8], &s[8..])
            }
            PatentRef::Early(p) => write!(f, "CN{}", core::str::from_utf8(&p.0).unwrap_or_default()),
        }
    }
}

impl fmt::Debug for PatentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PatentRef({self})")
    }
}

impl fmt::Debug for LegacyPatentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", PatentRef::Legacy(*self))
    }
}

impl fmt::Debug for EarlyPatentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", PatentRef::Early(*self))
    }
}

// ---------------------------------------------------------------------------
// Publication and grant numbers
// ---------------------------------------------------------------------------

const PUBLICATION_FIELD: &str = "publication_number";

/// A CN publication or grant number with its kind code (WIPO ST.16 as CNIPA
/// applies it): 7 digits until 2007, 9 digits since, the first digit being the
/// patent type (1 invention, 2 utility model, 3 design) and the kind code
/// `A` (invention application published), `B` (invention granted, since 2010;
/// also the 1985–92 examined application), `C` (invention granted, until 2010),
/// `U` (utility model, since 2010), `Y` (utility model, until 2010), `S`
/// (design). Written `CN101234567A`.
///
/// Binary form: the number as `u32`, then the kind code as one ASCII byte.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u32, u8)", into = "(u32, u8)")]
pub struct PublicationNumber {
    number: u32,
    kind: u8,
}

impl PublicationNumber {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, "publication number", s)?;
        let rest = strip_cn(s);
        let Some(kind) = rest.chars().last() else {
            return Err(IdError::PublicationDigits { field, got: 0 });
        };
        let digits = &rest[..rest.len() - kind.len_utf8()];
        if let Some(i) = digits.chars().position(|c| !c.is_ascii_digit()) {
            let ch = digits.chars().nth(i).unwrap_or('?');
            return Err(IdError::PatentChar { field, ch, position: s.len() - rest.len() + i + 1 });
        }
        if digits.len() != 7 && digits.len() != 9 {
            return Err(IdError::PublicationDigits { field, got: digits.len() });
        }
        let kind = u8::try_from(kind.to_ascii_uppercase()).unwrap_or(b'?');
        Self::new(field, number(digits.as_bytes()), kind)
    }

    fn new(field: &'static str, number: u32, kind: u8) -> Result<Self, IdError> {
        let got = number.checked_ilog10().map_or(1, |l| l as usize + 1);
        if got != 7 && got != 9 {
            return Err(IdError::PublicationDigits { field, got });
        }
        let expected = match kind {
            b'A' | b'B' | b'C' => b'1',
            b'U' | b'Y' => b'2',
            b'S' => b'3',
            _ => return Err(IdError::PublicationKind { field, ch: char::from(kind) }),
        };
        let first = number.to_string().as_bytes()[0];
        if first != expected {
            return Err(IdError::PublicationType {
                field,
                kind: char::from(kind),
                first: char::from(first),
                expected: char::from(expected),
            });
        }
        Ok(Self { number, kind })
    }

    /// Whether this number is a grant (B, C, U, Y, S) rather than an application's publication (A).
    pub fn is_grant(&self) -> bool {
        self.kind != b'A'
    }

    /// The kind code.
    pub fn kind(&self) -> char {
        char::from(self.kind)
    }
}

impl TryFrom<(u32, u8)> for PublicationNumber {
    type Error = IdError;
    fn try_from((number, kind): (u32, u8)) -> Result<Self, IdError> {
        Self::new(PUBLICATION_FIELD, number, kind)
    }
}

impl From<PublicationNumber> for (u32, u8) {
    fn from(p: PublicationNumber) -> Self {
        (p.number, p.kind)
    }
}

impl fmt::Display for PublicationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN{}{}", self.number, char::from(self.kind))
    }
}

impl fmt::Debug for PublicationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicationNumber({self})")
    }
}

// ---------------------------------------------------------------------------
// Codes stored as canonical strings
// ---------------------------------------------------------------------------

/// Codes whose binary form is their canonical text as a bincode string; decoding
/// parses the text and refuses any spelling other than the canonical one.
macro_rules! string_code {
    ($t:ident, $field:literal, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$t, E> {
                        $t::from_stored(s).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $t {
            /// The canonical text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Parses text read from an encoding and refuses any spelling but the canonical
            /// one (serde's and the hand-written decoder's one rule).
            pub(crate) fn from_stored(s: &str) -> Result<Self, IdError> {
                let v = $t::parse($field, s)?;
                if v.0 != s {
                    return Err(IdError::CodeShape {
                        field: $field,
                        what: $what,
                        expected: "stored in its canonical spelling",
                    });
                }
                Ok(v)
            }
        }
    };
}

/// A high-tech enterprise certificate number (高新技术企业证书编号): `GR`,
/// the four-digit year of recognition (2008.., the 2008 recognition measures),
/// the two-digit province code (GB/T 2260) and a six-digit serial, e.g.
/// `GR202144000123`. A certificate is valid for three years from its issue
/// date (认定办法 国科发火〔2016〕32号, art. 7).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct HnteCertificate(String);
string_code!(HnteCertificate, "hnte_certificate", "high-tech enterprise certificate number");

impl HnteCertificate {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "high-tech enterprise certificate number";
        reject_whitespace(field, WHAT, s)?;
        let b = s.as_bytes();
        let shape = IdError::CodeShape {
            field,
            what: WHAT,
            expected: "GR + 4-digit year + 2-digit province code + 6-digit serial, e.g. GR202144000123",
        };
        if b.len() != 14 || !b[..2].eq_ignore_ascii_case(b"GR") || !all_digits(&b[2..]) {
            return Err(shape);
        }
        let year = number(&b[2..6]) as u16;
        if !(2008..=2100).contains(&year) {
            return Err(IdError::CodeYear { field, what: WHAT, year, range: "2008..=2100" });
        }
        check_province(field, WHAT, &b[6..8])?;
        if number(&b[8..]) == 0 {
            return Err(IdError::SerialZero { field, what: WHAT });
        }
        Ok(Self(format!("GR{}", &s[2..])))
    }

    /// Year of recognition.
    pub fn year(&self) -> u16 {
        number(&self.0.as_bytes()[2..6]) as u16
    }
}

/// A tech-SME registration number (科技型中小企业入库登记编号): 18 digits,
/// the four-digit evaluation year (2017.., the 2017 evaluation measures),
/// the six-digit administrative division code of the registering authority
/// (GB/T 2260; its province part is checked) and an eight-digit serial, e.g.
/// `202144030500012345`. Valid for the evaluation year it names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TechSmeNumber(String);
string_code!(TechSmeNumber, "tech_sme_number", "tech-SME registration number");

impl TechSmeNumber {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "tech-SME registration number";
        reject_whitespace(field, WHAT, s)?;
        let b = s.as_bytes();
        if b.len() != 18 || !all_digits(b) {
            return Err(IdError::CodeShape {
                field,
                what: WHAT,
                expected: "18 digits: 4-digit year + 6-digit division code + 8-digit serial, e.g. 202144030500012345",
            });
        }
        let year = number(&b[..4]) as u16;
        if !(2017..=2100).contains(&year) {
            return Err(IdError::CodeYear { field, what: WHAT, year, range: "2017..=2100" });
        }
        check_province(field, WHAT, &b[4..6])?;
        if number(&b[10..]) == 0 {
            return Err(IdError::SerialZero { field, what: WHAT });
        }
        Ok(Self(s.to_owned()))
    }

    /// The evaluation year the registration is valid for.
    pub fn year(&self) -> u16 {
        number(&self.0.as_bytes()[..4]) as u16
    }
}

/// A CNIPA patent pledge registration number (专利权质押登记号): `Y`, the
/// four-digit year, a two-digit registering office code (`98` for CNIPA in
/// Beijing, otherwise the province code of a local office) and a seven-digit
/// serial, e.g. `Y2024980000123`; numbers issued before the `Y` prefix are the
/// same thirteen digits without it. No check digit exists; the shape, year
/// (2008..2100) and a non-zero serial are checked.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PledgeRegistration(String);
string_code!(PledgeRegistration, "pledge_registration", "CNIPA pledge registration number");

impl PledgeRegistration {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "CNIPA pledge registration number";
        reject_whitespace(field, WHAT, s)?;
        let (prefix, digits) = match s.as_bytes().first() {
            Some(b'Y' | b'y') => ("Y", &s[1..]),
            _ => ("", s),
        };
        let b = digits.as_bytes();
        if b.len() != 13 || !all_digits(b) {
            return Err(IdError::CodeShape {
                field,
                what: WHAT,
                expected: "Y + 4-digit year + 2-digit office code + 7-digit serial, e.g. Y2024980000123 (older numbers without the Y)",
            });
        }
        let year = number(&b[..4]) as u16;
        if !(2008..=2100).contains(&year) {
            return Err(IdError::CodeYear { field, what: WHAT, year, range: "2008..=2100" });
        }
        if &b[4..6] != b"98" && &b[4..6] != b"99" {
            check_province(field, WHAT, &b[4..6])?;
        }
        if number(&b[6..]) == 0 {
            return Err(IdError::SerialZero { field, what: WHAT });
        }
        Ok(Self(format!("{prefix}{digits}")))
    }
}

/// A people's court case number (案号), after the Supreme People's Court's
/// rules on case numbers (法〔2015〕137号): `（` year `）`, the court's code and
/// the case-type code (Chinese characters and digits, starting and ending with
/// a character, e.g. `粤03执`), the serial and `号`, e.g. `（2024）粤03执1234号`.
/// Half-width `()` and `〔〕` are accepted and written as `（）`. At most 64 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CourtCaseNumber(String);
string_code!(CourtCaseNumber, "court_case", "court case number");

impl CourtCaseNumber {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "court case number";
        reject_whitespace(field, WHAT, s)?;
        let shape = IdError::CodeShape {
            field,
            what: WHAT,
            expected: "（year）court and type code, serial, 号, at most 64 bytes, e.g. （2024）粤03执1234号",
        };
        let rest = ["（", "(", "〔"].iter().find_map(|o| s.strip_prefix(o)).ok_or(shape.clone())?;
        let (year, rest) = rest.split_at_checked(4).ok_or(shape.clone())?;
        let rest = ["）", ")", "〕"].iter().find_map(|c| rest.strip_prefix(c)).ok_or(shape.clone())?;
        if !all_digits(year.as_bytes()) {
            return Err(shape);
        }
        let y = number(year.as_bytes()) as u16;
        if !(1990..=2100).contains(&y) {
            return Err(IdError::CodeYear { field, what: WHAT, year: y, range: "1990..=2100" });
        }
        let body = rest.strip_suffix('号').ok_or(shape.clone())?;
        let serial_len = body.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (code, serial) = body.split_at(body.len() - serial_len);
        let cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
        let code_ok = code.chars().next().is_some_and(cjk)
            && code.chars().last().is_some_and(cjk)
            && code.chars().all(|c| cjk(c) || c.is_ascii_digit())
            && code.chars().count() <= 16;
        let serial_ok = (1..=7).contains(&serial.len()) && !serial.starts_with('0');
        let out = format!("（{year}）{code}{serial}号");
        if !code_ok || !serial_ok || out.len() > 64 {
            return Err(shape);
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn roundtrip<T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(v: &T) {
        let b = codec::encode(v);
        assert_eq!(&codec::decode::<T>("t", &b, 256).unwrap(), v);
    }

    #[test]
    fn patent_forms() {
        let p = |s| PatentRef::parse("patent", s);
        let m = p("CN200310102344.5").unwrap();
        assert!(matches!(m, PatentRef::Modern(_)));
        assert_eq!(p("200310102344.5").unwrap(), m);
        // 1989–2003: 8 digits and a check over weights 2..9.
        // 9·2+9·3+1·4+0·5+0·6+0·7+0·8+1·9 = 58, 58 mod 11 = 3.
        let l = p("CN99100001.3").unwrap();
        assert_eq!(l.to_string(), "CN99100001.3");
        assert_eq!(l.year(), 1999);
        assert_eq!(p("cn991000013").unwrap(), l);
        assert_eq!(p("CN99100001.6"), Err(IdError::PatentCheck { field: "patent", found: '6', expected: '3' }));
        // 0·2+2·3+1·4+0+0+0+0+5·9 = 55 → 0.
        assert_eq!(p("CN02100005.0").unwrap().year(), 2002);
        assert!(matches!(p("CN04100001.5"), Err(IdError::PatentFormYear { year: 4, .. })));
        assert!(matches!(p("CN99400001.1"), Err(IdError::PatentType { ch: '4', .. })));
        // 1985–88: 8 digits, no check.
        let e = p("CN85100001").unwrap();
        assert_eq!(e.to_string(), "CN85100001");
        assert_eq!(e.year(), 1985);
        assert!(matches!(p("CN89100001"), Err(IdError::PatentFormYear { year: 89, .. })));
        assert!(matches!(p("CN85800001"), Err(IdError::PatentType { ch: '8', .. })));
        assert!(matches!(p("CN1234567.1"), Err(IdError::PatentForm { got: 7, .. })));
        assert!(matches!(p("CN12345"), Err(IdError::PatentForm { got: 5, .. })));
        assert!(matches!(p("CN9910A001.7"), Err(IdError::PatentChar { ch: 'A', position: 7, .. })));
        assert!(matches!(p("CN200310102344.4"), Err(IdError::PatentCheck { .. })));
        for v in [m, l, e] {
            roundtrip(&v);
        }
        // Stored forms are strict.
        let mut b = codec::encode(&l);
        *b.last_mut().unwrap() = b'7';
        assert!(codec::decode::<PatentRef>("t", &b, 64).is_err());
    }

    #[test]
    fn check_x_in_legacy_form() {
        // Find a serial whose check is 10 and confirm X round-trips.
        let digits = (0..100_000u32).map(|n| format!("991{n:05}")).find(|d| cn_check(d.as_bytes()) == b'X').unwrap();
        let p = PatentRef::parse("patent", &format!("CN{digits}.x")).unwrap();
        assert_eq!(p.to_string(), format!("CN{digits}.X"));
        roundtrip(&p);
    }

    #[test]
    fn publication_numbers() {
        let p = |s| PublicationNumber::parse("grant", s);
        let a = p("CN101234567A").unwrap();
        assert!(!a.is_grant());
        assert_eq!(a.to_string(), "CN101234567A");
        assert!(p("CN1234567C").unwrap().is_grant());
        assert!(p("cn201234567u").unwrap().is_grant());
        assert!(p("CN2345678Y").is_ok());
        assert!(p("CN301234567S").is_ok());
        assert!(p("112345678B").is_ok());
        assert_eq!(p("CN12345678A"), Err(IdError::PublicationDigits { field: "grant", got: 8 }));
        assert_eq!(p("CN101234567D"), Err(IdError::PublicationKind { field: "grant", ch: 'D' }));
        assert_eq!(
            p("CN201234567B"),
            Err(IdError::PublicationType { field: "grant", kind: 'B', first: '2', expected: '1' })
        );
        assert!(matches!(p("CN10123A567A"), Err(IdError::PatentChar { ch: 'A', .. })));
        roundtrip(&a);
        assert!(codec::decode::<PublicationNumber>("t", &codec::encode(&(12_345_678u32, b'A')), 64).is_err());
        assert!(codec::decode::<PublicationNumber>("t", &codec::encode(&(101_234_567u32, b'a')), 64).is_err());
    }

    #[test]
    fn hnte_certificates() {
        let h = |s| HnteCertificate::parse("certificate", s);
        let c = h("GR202144000123").unwrap();
        assert_eq!(c.year(), 2021);
        assert_eq!(h("gr202144000123").unwrap(), c);
        assert!(matches!(h("GR20214400012"), Err(IdError::CodeShape { .. })));
        assert!(matches!(h("GX202144000123"), Err(IdError::CodeShape { .. })));
        assert!(matches!(h("GR200744000123"), Err(IdError::CodeYear { year: 2007, .. })));
        assert!(matches!(h("GR202199000123"), Err(IdError::Province { .. })));
        assert!(matches!(h("GR202144000000"), Err(IdError::SerialZero { .. })));
        roundtrip(&c);
        assert!(codec::decode::<HnteCertificate>("t", &codec::encode(&"gr202144000123"), 64).is_err());
    }

    #[test]
    fn tech_sme_numbers() {
        let t = |s| TechSmeNumber::parse("registration", s);
        let n = t("202144030500012345").unwrap();
        assert_eq!(n.year(), 2021);
        assert!(matches!(t("20214403050001234"), Err(IdError::CodeShape { .. })));
        assert!(matches!(t("201644030500012345"), Err(IdError::CodeYear { year: 2016, .. })));
        assert!(matches!(t("202199030500012345"), Err(IdError::Province { .. })));
        assert!(matches!(t("202144030500000000"), Err(IdError::SerialZero { .. })));
        roundtrip(&n);
    }

    #[test]
    fn pledge_registrations() {
        let r = |s| PledgeRegistration::parse("registration", s);
        assert_eq!(r("y2024980000123").unwrap().as_str(), "Y2024980000123");
        assert!(r("2011990000123").is_ok());
        assert!(r("Y2023440000001").is_ok());
        assert!(matches!(r("Y202498000012"), Err(IdError::CodeShape { .. })));
        assert!(matches!(r("Y2024970000123"), Err(IdError::Province { .. })));
        assert!(matches!(r("Y2024980000000"), Err(IdError::SerialZero { .. })));
        assert!(matches!(r("Y2007980000123"), Err(IdError::CodeYear { .. })));
        roundtrip(&r("Y2024980000123").unwrap());
    }

    #[test]
    fn court_case_numbers() {
        let c = |s| CourtCaseNumber::parse("court_case", s);
        let n = c("（2024）粤03执1234号").unwrap();
        assert_eq!(c("(2024)粤03执1234号").unwrap(), n);
        assert_eq!(c("〔2024〕粤03执1234号").unwrap(), n);
        assert!(c("（2023）最高法民终12号").is_ok());
        for bad in
            ["2024粤03执1234号", "（2024）粤03执1234", "（2024）031234号", "（2024）粤03执0123号", "（1989）粤03执1号"]
        {
            assert!(c(bad).is_err(), "{bad}");
        }
        roundtrip(&n);
        assert!(codec::decode::<CourtCaseNumber>("t", &codec::encode(&"(2024)粤03执1234号"), 256).is_err());
    }
}
