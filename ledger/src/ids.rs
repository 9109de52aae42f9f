//! Validated identifiers and value types carried in Credence ledger records.
//!
//! Every type in this module can only be constructed through validation, so
//! a value that exists is a valid value:
//!
//! * **Human form.** `parse(field, text)` checks the text and returns an
//!   [`IdError`] that names the `field` and states the rule that was broken.
//!   `Display` writes the canonical text. Parsers are strict: surrounding
//!   whitespace is *not* trimmed (it is reported as an error), and nothing is
//!   guessed. For codes whose canonical form is upper case (social credit
//!   codes, patent numbers, currency codes, the `Q` of a period) ASCII lower
//!   case is accepted and normalised, because these codes are copied by hand
//!   from paper documents.
//! * **Binary form.** All types are stored in signed records encoded with
//!   bincode 2 (`config::legacy()`: fixed-width little-endian integers). Codes
//!   serialize as fixed-size raw byte tuples (no length prefix), dates and
//!   periods as fixed-width integers; only [`MemberName`] is variable length
//!   (a bincode string: `u64` length then UTF-8 bytes). Deserialization
//!   re-validates and accepts **only the canonical form** (for example no lower
//!   case), so one value has exactly one encoding and a decoded record can
//!   never hold an invalid identifier. Decoding errors name the type
//!   (`uscc`, `patent_number`, `currency`, `date`, `period`, `member_name`) as
//!   the field, because the decoder cannot know the record field.
//!
//! No function in this module panics on any input.

use core::fmt;

use serde::{Deserialize, Serialize};

/// A validation failure. Every variant names the offending `field` and its
/// `Display` text states the rule, e.g.
/// `enterprise: check character is '6' but should be 'X'`.
///
/// Positions in messages are 1-based character positions in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input contains whitespace; inputs are never trimmed.
    #[error("{field}: {what} must not contain whitespace (found at position {position}); input is not trimmed")]
    Whitespace { field: &'static str, what: &'static str, position: usize },
    /// A stored (decoded) value contains a non-ASCII byte.
    #[error("{field}: stored {what} has invalid byte 0x{byte:02X} at position {position}")]
    InvalidByte { field: &'static str, what: &'static str, byte: u8, position: usize },
    /// A stored (decoded) value is valid only after normalisation; the stored
    /// form must be canonical.
    #[error("{field}: stored {what} is not in canonical form (lower-case letter at position {position})")]
    NotCanonical { field: &'static str, what: &'static str, position: usize },

    /// Unified social credit code of the wrong length.
    #[error("{field}: unified social credit code must be 18 characters, got {got}")]
    UsccLength { field: &'static str, got: usize },
    /// Character outside the GB 32100-2015 character set.
    #[error(
        "{field}: character {ch:?} at position {position} is not allowed in a unified social credit code (allowed: 0-9 and A-Z except I, O, Z, S, V)"
    )]
    UsccChar { field: &'static str, ch: char, position: usize },
    /// Non-digit in the administrative division code (positions 3-8).
    #[error(
        "{field}: character {ch:?} at position {position} must be a digit (positions 3-8 are the administrative division code)"
    )]
    UsccDivision { field: &'static str, ch: char, position: usize },
    /// Check character (position 18) does not match.
    #[error("{field}: check character is {found:?} but should be {expected:?}")]
    UsccCheck { field: &'static str, found: char, expected: char },

    /// Patent number with a prefix other than `CN`.
    #[error(
        "{field}: prefix {prefix:?} is not allowed; a patent application number starts with \"CN\" or directly with its 12 digits"
    )]
    PatentPrefix { field: &'static str, prefix: String },
    /// Pre-2003 8-digit patent application number.
    #[error(
        "{field}: 8-digit patent application numbers (the format used before 2003) are not supported; expected the 12-digit format, e.g. CN200310102344.5"
    )]
    PatentLegacyFormat { field: &'static str },
    /// Wrong number of digits before the check digit.
    #[error("{field}: patent application number must have 12 digits before the check digit, got {got}")]
    PatentDigitCount { field: &'static str, got: usize },
    /// Non-digit among the 12 digits.
    #[error(
        "{field}: character {ch:?} at position {position} is not allowed in a patent application number (expected a digit)"
    )]
    PatentChar { field: &'static str, ch: char, position: usize },
    /// Not exactly one check character after the 12 digits.
    #[error("{field}: expected exactly 1 check digit (0-9 or X) after the 12 digits, got {got} characters")]
    PatentCheckLength { field: &'static str, got: usize },
    /// Check character is not `0-9` or `X`.
    #[error("{field}: check digit {ch:?} is not valid (must be 0-9 or X)")]
    PatentCheckChar { field: &'static str, ch: char },
    /// Filing year outside 2003..=2100.
    #[error("{field}: year {year} is out of range 2003..=2100 for a 12-digit patent application number")]
    PatentYear { field: &'static str, year: u16 },
    /// Unknown application type digit (position 5 of the 12 digits).
    #[error(
        "{field}: type digit {ch:?} is not valid (1 invention, 2 utility model, 3 design, 8 PCT invention, 9 PCT utility model)"
    )]
    PatentType { field: &'static str, ch: char },
    /// Check digit does not match.
    #[error("{field}: check digit is {found:?} but should be {expected:?}")]
    PatentCheck { field: &'static str, found: char, expected: char },

    /// Currency code of the wrong length.
    #[error("{field}: currency code must be 3 letters (ISO 4217), got {got} characters")]
    CurrencyLength { field: &'static str, got: usize },
    /// Currency code character outside A-Z.
    #[error(
        "{field}: character {ch:?} at position {position} is not allowed in a currency code (ISO 4217 alphabetic codes use A-Z)"
    )]
    CurrencyChar { field: &'static str, ch: char, position: usize },

    /// Empty amount.
    #[error("{field}: amount must not be empty")]
    AmountEmpty { field: &'static str },
    /// Amount with `+` or `-`.
    #[error("{field}: amount must not have a sign ({ch:?}); amounts are non-negative")]
    AmountSign { field: &'static str, ch: char },
    /// Amount in exponent notation.
    #[error("{field}: amount must not use exponent notation ({ch:?})")]
    AmountExponent { field: &'static str, ch: char },
    /// Amount with thousands separators.
    #[error("{field}: amount must not contain thousands separators ({ch:?})")]
    AmountSeparator { field: &'static str, ch: char },
    /// Any other character in an amount.
    #[error(
        "{field}: character {ch:?} at position {position} is not allowed in an amount (allowed: digits 0-9 and one '.')"
    )]
    AmountChar { field: &'static str, ch: char, position: usize },
    /// Amount starting with the decimal point.
    #[error("{field}: amount needs a digit before the decimal point (write 0.5, not .5)")]
    AmountNoIntegerDigits { field: &'static str },
    /// Amount ending with the decimal point.
    #[error("{field}: amount needs a digit after the decimal point (write 5 or 5.0, not 5.)")]
    AmountNoFractionDigits { field: &'static str },
    /// More than two fractional digits.
    #[error("{field}: at most 2 digits after the decimal point, got {got}")]
    AmountTooManyDecimals { field: &'static str, got: usize },
    /// Amount does not fit in `u64` minor units.
    #[error("{field}: amount is too large (maximum is 184467440737095516.15)")]
    AmountOverflow { field: &'static str },

    /// Date not written as `YYYY-MM-DD`.
    #[error("{field}: date must be written as YYYY-MM-DD, e.g. 2024-02-29")]
    DateFormat { field: &'static str },
    /// Year outside 1900..=9999 (dates and periods).
    #[error("{field}: year {year} is out of range 1900..=9999")]
    YearRange { field: &'static str, year: u32 },
    /// Month outside 1..=12.
    #[error("{field}: month {month} is out of range 1..=12")]
    MonthRange { field: &'static str, month: u32 },
    /// Day outside the month.
    #[error("{field}: day {day} is out of range for {year:04}-{month:02} (1..={max})")]
    DayRange { field: &'static str, year: u32, month: u32, day: u32, max: u32 },
    /// Unix timestamp after 9999-12-31.
    #[error("{field}: timestamp {ms} ms is after 9999-12-31")]
    TimestampRange { field: &'static str, ms: u64 },

    /// Period not written as `YYYY`, `YYYYQn` or `YYYY-Qn`.
    #[error("{field}: period must be written as YYYY, YYYYQn or YYYY-Qn, e.g. 2024Q3")]
    PeriodFormat { field: &'static str },
    /// Quarter outside 1..=4 (0 in the stored form means the whole year).
    #[error("{field}: quarter {quarter} is out of range 1..=4 (a whole-year period is written as just the year)")]
    PeriodQuarter { field: &'static str, quarter: u8 },

    /// Member name of the wrong length.
    #[error("{field}: member name must be 1 to 32 characters, got {got}")]
    MemberNameLength { field: &'static str, got: usize },
    /// Member name character outside `[a-z0-9-]`.
    #[error(
        "{field}: character {ch:?} at position {position} is not allowed in a member name (allowed: a-z, 0-9 and '-')"
    )]
    MemberNameChar { field: &'static str, ch: char, position: usize },
    /// Member name starting or ending with `-`.
    #[error("{field}: member name must not start or end with '-'")]
    MemberNameHyphen { field: &'static str },

    /// A CN patent application number in none of its three historical forms.
    #[error(
        "{field}: a CN patent application number has 12 digits and a check digit (filed since 2003-10-01, e.g. CN200310102344.5), 8 digits and a check digit (1989 to 2003, e.g. CN99100001.3) or 8 digits without one (1985 to 1988, e.g. CN85100001); got {got} digits {check}"
    )]
    PatentForm { field: &'static str, got: usize, check: &'static str },
    /// The two-digit year of a pre-2003 number does not belong to its form.
    #[error("{field}: year digits {year:02} do not fit the {form} form ({rule})")]
    PatentFormYear { field: &'static str, year: u8, form: &'static str, rule: &'static str },
    /// A publication or grant number with the wrong number of digits.
    #[error(
        "{field}: a CN publication or grant number has 7 digits (until 2007) or 9 digits (since 2007) before its kind code, e.g. CN101234567A; got {got}"
    )]
    PublicationDigits { field: &'static str, got: usize },
    /// Unknown kind code.
    #[error(
        "{field}: kind code {ch:?} is not valid (A invention application, B or C invention grant, U or Y utility model, S design)"
    )]
    PublicationKind { field: &'static str, ch: char },
    /// The first digit (the patent type) disagrees with the kind code.
    #[error("{field}: kind code {kind} needs a number starting with {expected} (the patent type), got {first}")]
    PublicationType { field: &'static str, kind: char, first: char, expected: char },
    /// A code not shaped as its scheme prescribes.
    #[error("{field}: {what} must be {expected}")]
    CodeShape { field: &'static str, what: &'static str, expected: &'static str },
    /// A code's year outside its scheme's years.
    #[error("{field}: year {year} of the {what} is out of range {range}")]
    CodeYear { field: &'static str, what: &'static str, year: u16, range: &'static str },
    /// Not a province-level administrative division code (GB/T 2260).
    #[error("{field}: {code:?} in the {what} is not a province-level division code (GB/T 2260: 11..65)")]
    Province { field: &'static str, what: &'static str, code: String },
    /// A serial number of all zeros.
    #[error("{field}: the serial number of the {what} must not be all zeros")]
    SerialZero { field: &'static str, what: &'static str },
}

impl IdError {
    /// The field named by this error.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Whitespace { field, .. }
            | Self::InvalidByte { field, .. }
            | Self::NotCanonical { field, .. }
            | Self::UsccLength { field, .. }
            | Self::UsccChar { field, .. }
            | Self::UsccDivision { field, .. }
            | Self::UsccCheck { field, .. }
            | Self::PatentPrefix { field, .. }
            | Self::PatentLegacyFormat { field }
            | Self::PatentDigitCount { field, .. }
            | Self::PatentChar { field, .. }
            | Self::PatentCheckLength { field, .. }
            | Self::PatentCheckChar { field, .. }
            | Self::PatentYear { field, .. }
            | Self::PatentType { field, .. }
            | Self::PatentCheck { field, .. }
            | Self::CurrencyLength { field, .. }
            | Self::CurrencyChar { field, .. }
            | Self::AmountEmpty { field }
            | Self::AmountSign { field, .. }
            | Self::AmountExponent { field, .. }
            | Self::AmountSeparator { field, .. }
            | Self::AmountChar { field, .. }
            | Self::AmountNoIntegerDigits { field }
            | Self::AmountNoFractionDigits { field }
            | Self::AmountTooManyDecimals { field, .. }
            | Self::AmountOverflow { field }
            | Self::DateFormat { field }
            | Self::YearRange { field, .. }
            | Self::MonthRange { field, .. }
            | Self::DayRange { field, .. }
            | Self::TimestampRange { field, .. }
            | Self::PeriodFormat { field }
            | Self::PeriodQuarter { field, .. }
            | Self::MemberNameLength { field, .. }
            | Self::MemberNameChar { field, .. }
            | Self::MemberNameHyphen { field }
            | Self::PatentForm { field, .. }
            | Self::PatentFormYear { field, .. }
            | Self::PublicationDigits { field, .. }
            | Self::PublicationKind { field, .. }
            | Self::PublicationType { field, .. }
            | Self::CodeShape { field, .. }
            | Self::CodeYear { field, .. }
            | Self::Province { field, .. }
            | Self::SerialZero { field, .. } => field,
        }
    }
}

/// Rejects any whitespace in `s` (inputs are never trimmed).
pub(crate) fn reject_whitespace(field: &'static str, what: &'static str, s: &str) -> Result<(), IdError> {
    match s.chars().position(char::is_whitespace) {
        Some(i) => Err(IdError::Whitespace { field, what, position: i.saturating_add(1) }),
        None => Ok(()),
    }
}

/// Checks that stored bytes are ASCII and contain no lower-case letters
/// (stored codes must be in canonical upper-case form).
fn check_stored_upper(field: &'static str, what: &'static str, bytes: &[u8]) -> Result<(), IdError> {
    for (i, &byte) in bytes.iter().enumerate() {
        let position = i.saturating_add(1);
        if !byte.is_ascii() {
            return Err(IdError::InvalidByte { field, what, byte, position });
        }
        if byte.is_ascii_lowercase() {
            return Err(IdError::NotCanonical { field, what, position });
        }
    }
    Ok(())
}

/// Value of an ASCII digit byte (0 for anything else; callers validate first).
pub(crate) fn digit_value(b: u8) -> u32 {
    if b.is_ascii_digit() { u32::from(b.wrapping_sub(b'0')) } else { 0 }
}

// ---------------------------------------------------------------------------
// Unified social credit code
// ---------------------------------------------------------------------------

const USCC_WHAT: &str = "unified social credit code";
const USCC_FIELD: &str = "uscc";
/// GB 32100-2015 character set; a character's value is its index (0..=30).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100-2015 weights for positions 1..=17: 3^(i-1) mod 31.
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// `USCC_VALUES[b]` is byte `b`'s index in [`USCC_CHARSET`] plus one, or 0 if it is not
/// in the set: one load per character instead of a search (every leaf decode checks up to
/// three codes, 18 characters each, three times over).
const USCC_VALUES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < USCC_CHARSET.len() {
        t[USCC_CHARSET[i] as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

fn uscc_value(b: u8) -> Option<u32> {
    USCC_VALUES[usize::from(b)].checked_sub(1).map(u32::from)
}

/// Computes the GB 32100-2015 check character for the first 17 characters.
/// Characters outside the set count as 0 (callers validate first).
fn uscc_check_char(first17: &[u8; 17]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(&b, w)| uscc_value(b).unwrap_or(0).saturating_mul(w))
        .fold(0u32, u32::saturating_add);
    let value = (31 - sum % 31) % 31;
    usize::try_from(value).ok().and_then(|v| USCC_CHARSET.get(v)).copied().unwrap_or(b'0')
}

/// A unified social credit code (统一社会信用代码) as defined by
/// GB 32100-2015 "Coding rule of the unified social credit identifier for
/// legal entities and other organizations".
///
/// Rules enforced:
/// * exactly 18 characters from `0-9` and `A-Z` except `I, O, Z, S, V`;
/// * position 1 (registration authority) and 2 (entity type) are only checked
///   against the character set, because the code tables change over time;
/// * positions 3-8 (administrative division code, GB/T 2260) are digits;
/// * positions 9-17 are the organization code;
/// * position 18 is the check character: with character values `v_i` (the
///   index in the character set) and weights `w_i = 3^(i-1) mod 31`, the check
///   value is `31 - (Σ v_i·w_i mod 31)`, where 31 becomes 0, mapped back
///   through the character set.
///
/// [`Uscc::parse`] accepts ASCII lower case and normalises it to upper case;
/// whitespace anywhere (including leading or trailing) is rejected.
///
/// Binary form: 18 raw ASCII bytes (a fixed-size tuple, no length prefix).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 18]", into = "[u8; 18]")]
pub struct Uscc([u8; 18]);

impl Uscc {
    /// Parses the human form (18 characters, ASCII lower case accepted).
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, USCC_WHAT, s)?;
        let got = s.chars().count();
        if got != 18 {
            return Err(IdError::UsccLength { field, got });
        }
        let mut bytes = [0u8; 18];
        for (i, (slot, ch)) in bytes.iter_mut().zip(s.chars()).enumerate() {
            match u8::try_from(ch.to_ascii_uppercase()) {
                Ok(b) if uscc_value(b).is_some() => *slot = b,
                _ => {
                    return Err(IdError::UsccChar { field, ch, position: i.saturating_add(1) });
                }
            }
        }
        Self::from_canonical(field, bytes)
    }

    /// Validates upper-case ASCII bytes.
    fn from_canonical(field: &'static str, bytes: [u8; 18]) -> Result<Self, IdError> {
        for (i, &b) in bytes.iter().enumerate() {
            if uscc_value(b).is_none() {
                return Err(IdError::UsccChar { field, ch: char::from(b), position: i.saturating_add(1) });
            }
        }
        for (i, &b) in bytes.iter().enumerate().take(8).skip(2) {
            if !b.is_ascii_digit() {
                return Err(IdError::UsccDivision { field, ch: char::from(b), position: i.saturating_add(1) });
            }
        }
        let [first17 @ .., check] = bytes;
        let expected = uscc_check_char(&first17);
        if check != expected {
            return Err(IdError::UsccCheck { field, found: char::from(check), expected: char::from(expected) });
        }
        Ok(Self(bytes))
    }

    /// The canonical 18-character code.
    pub fn as_str(&self) -> &str {
        // Invariant: the bytes are ASCII, so this never fails.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The canonical code as raw bytes (the stored form).
    pub fn as_bytes(&self) -> &[u8; 18] {
        &self.0
    }

    /// Position 1: registration authority code.
    pub fn registration_authority(&self) -> char {
        char::from(self.0[0])
    }

    /// Position 2: entity type code.
    pub fn entity_type(&self) -> char {
        char::from(self.0[1])
    }

    /// Positions 3-8: administrative division code (6 digits).
    pub fn division_code(&self) -> &str {
        self.as_str().get(2..8).unwrap_or_default()
    }

    /// Positions 9-17: organization code.
    pub fn organization_code(&self) -> &str {
        self.as_str().get(8..17).unwrap_or_default()
    }

    /// Position 18: check character.
    pub fn check_char(&self) -> char {
        char::from(self.0[17])
    }
}

impl TryFrom<[u8; 18]> for Uscc {
    type Error = IdError;

    /// Validates the stored form (canonical upper case only).
    fn try_from(bytes: [u8; 18]) -> Result<Self, IdError> {
        check_stored_upper(USCC_FIELD, USCC_WHAT, &bytes)?;
        Self::from_canonical(USCC_FIELD, bytes)
    }
}

impl From<Uscc> for [u8; 18] {
    fn from(u: Uscc) -> Self {
        u.0
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uscc({})", self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Patent application number
// ---------------------------------------------------------------------------

const PATENT_WHAT: &str = "patent application number";
const PATENT_FIELD: &str = "patent_number";
/// CNIPA check-digit weights for the 12 digits.
pub(crate) const PATENT_WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];

/// Check character for 12 ASCII digits: Σ d_i·w_i mod 11, 10 → `X`.
fn patent_check_char(digits: &[u8; 12]) -> u8 {
    let sum: u32 = digits
        .iter()
        .zip(PATENT_WEIGHTS)
        .map(|(&b, w)| digit_value(b).saturating_mul(w))
        .fold(0u32, u32::saturating_add);
    usize::try_from(sum % 11).ok().and_then(|i| b"0123456789X".get(i)).copied().unwrap_or(b'X')
}

/// Application type, digit 5 of a 12-digit CN patent application number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatentKind {
    /// `1`: invention (发明).
    Invention,
    /// `2`: utility model (实用新型).
    UtilityModel,
    /// `3`: design (外观设计).
    Design,
    /// `8`: PCT invention application entering the Chinese national phase.
    PctInvention,
    /// `9`: PCT utility model application entering the Chinese national phase.
    PctUtilityModel,
}

impl PatentKind {
    pub(crate) fn from_digit(b: u8) -> Option<Self> {
        match b {
            b'1' => Some(Self::Invention),
            b'2' => Some(Self::UtilityModel),
            b'3' => Some(Self::Design),
            b'8' => Some(Self::PctInvention),
            b'9' => Some(Self::PctUtilityModel),
            _ => None,
        }
    }
}

/// A Chinese patent application number (专利申请号) in the 12-digit format
/// used by the China National Intellectual Property Administration (CNIPA,
/// formerly SIPO) since 1 October 2003, written `CN` + 12 digits + `.` +
/// check digit, e.g. `CN200310102344.5`.
///
/// Rules enforced:
/// * digits 1-4: filing year, 2003..=2100 (the older 8-digit numbers are not
///   supported and are rejected with a dedicated error);
/// * digit 5: application type `1` invention, `2` utility model, `3` design,
///   `8` PCT invention entering China, `9` PCT utility model entering China;
/// * digits 6-12: serial number;
/// * check digit: `Σ d_i·w_i mod 11` with weights `2,3,4,5,6,7,8,9,2,3,4,5`,
///   where 10 is written `X`.
///
/// [`PatentNumber::parse`] accepts the number with or without the `CN`
/// prefix and with or without the `.`, and lower-case `cn`/`x`. Other prefixes
/// (including `ZL`, used on granted patents) are rejected. `Display` writes
/// the canonical form `CN200310102344.5`.
///
/// Binary form: 13 raw ASCII bytes, the 12 digits then the check character
/// (a fixed-size tuple, no length prefix).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 13]", into = "[u8; 13]")]
pub struct PatentNumber {
    /// ASCII digits.
    digits: [u8; 12],
    /// ASCII `0-9` or `X`.
    check: u8,
}

impl PatentNumber {
    /// Parses the human form, e.g. `CN200310102344.5`, `200310102344.5`,
    /// `cn2003101023445`.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, PATENT_WHAT, s)?;
        let chars: Vec<char> = s.chars().collect();
        let prefix_len = chars.iter().take_while(|c| c.is_alphabetic()).count();
        let start = if prefix_len == 0 {
            0
        } else {
            let prefix: String = chars.iter().take(prefix_len).collect();
            if prefix.eq_ignore_ascii_case("CN") {
                2
            } else {
                return Err(IdError::PatentPrefix { field, prefix: chars.iter().take(prefix_len.min(8)).collect() });
            }
        };
        let rest = chars.get(start..).unwrap_or_default();
        let position = |i: usize| start.saturating_add(i).saturating_add(1);

        let mut dot = None;
        for (i, &c) in rest.iter().enumerate() {
            if c == '.' {
                if dot.is_some() {
                    return Err(IdError::PatentChar { field, ch: c, position: position(i) });
                }
                dot = Some(i);
            }
        }
        let (body, check_part): (&[char], &[char]) = match dot {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i.saturating_add(1)..).unwrap_or_default()),
            // Without '.', the last character is the check digit.
            None => match rest.split_last() {
                Some((last, body)) => (body, core::slice::from_ref(last)),
                None => (&[], &[]),
            },
        };

        for (i, &c) in body.iter().enumerate() {
            if !c.is_ascii_digit() {
                return Err(IdError::PatentChar { field, ch: c, position: position(i) });
            }
        }
        if body.len() == 8 {
            return Err(IdError::PatentLegacyFormat { field });
        }
        let mut digits = [0u8; 12];
        if body.len() != digits.len() {
            return Err(IdError::PatentDigitCount { field, got: body.len() });
        }
        for (slot, &c) in digits.iter_mut().zip(body) {
            *slot = u8::try_from(c).unwrap_or(b'0');
        }
        let check = match check_part {
            [c] => match u8::try_from(c.to_ascii_uppercase()) {
                Ok(b) if b.is_ascii_digit() || b == b'X' => b,
                _ => return Err(IdError::PatentCheckChar { field, ch: *c }),
            },
            other => {
                return Err(IdError::PatentCheckLength { field, got: other.len() });
            }
        };
        Self::from_canonical(field, digits, check)
    }

    /// Validates canonical parts (ASCII, upper-case `X`).
    fn from_canonical(field: &'static str, digits: [u8; 12], check: u8) -> Result<Self, IdError> {
        for (i, &b) in digits.iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(IdError::PatentChar { field, ch: char::from(b), position: i.saturating_add(1) });
            }
        }
        if !(check.is_ascii_digit() || check == b'X') {
            return Err(IdError::PatentCheckChar { field, ch: char::from(check) });
        }
        let [y0, y1, y2, y3, kind, ..] = digits;
        let year = [y0, y1, y2, y3].iter().fold(0u32, |acc, &b| acc.saturating_mul(10).saturating_add(digit_value(b)));
        let year = u16::try_from(year).unwrap_or(u16::MAX);
        if !(2003..=2100).contains(&year) {
            return Err(IdError::PatentYear { field, year });
        }
        if PatentKind::from_digit(kind).is_none() {
            return Err(IdError::PatentType { field, ch: char::from(kind) });
        }
        let expected = patent_check_char(&digits);
        if check != expected {
            return Err(IdError::PatentCheck { field, found: char::from(check), expected: char::from(expected) });
        }
        Ok(Self { digits, check })
    }

    /// The 12 digits without prefix or check digit.
    pub fn digits(&self) -> &str {
        // Invariant: ASCII digits, so this never fails.
        core::str::from_utf8(&self.digits).unwrap_or_default()
    }

    /// The check character, `0-9` or `X`.
    pub fn check_char(&self) -> char {
        char::from(self.check)
    }

    /// Filing year (digits 1-4).
    pub fn year(&self) -> u16 {
        let [y0, y1, y2, y3, ..] = self.digits;
        let year = [y0, y1, y2, y3].iter().fold(0u32, |acc, &b| acc.saturating_mul(10).saturating_add(digit_value(b)));
        u16::try_from(year).unwrap_or(u16::MAX)
    }

    /// Application type (digit 5).
    pub fn kind(&self) -> PatentKind {
        PatentKind::from_digit(self.digits[4]).unwrap_or(PatentKind::Invention)
    }
}

impl TryFrom<[u8; 13]> for PatentNumber {
    type Error = IdError;

    /// Validates the stored form (12 digits then `0-9` or upper-case `X`).
    fn try_from(bytes: [u8; 13]) -> Result<Self, IdError> {
        check_stored_upper(PATENT_FIELD, PATENT_WHAT, &bytes)?;
        let [digits @ .., check] = bytes;
        Self::from_canonical(PATENT_FIELD, digits, check)
    }
}

impl From<PatentNumber> for [u8; 13] {
    fn from(p: PatentNumber) -> Self {
        let mut out = [0u8; 13];
        for (slot, b) in out.iter_mut().zip(p.digits.iter().chain([&p.check])) {
            *slot = *b;
        }
        out
    }
}

impl fmt::Display for PatentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CN{}.{}", self.digits(), self.check_char())
    }
}

impl fmt::Debug for PatentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PatentNumber({self})")
    }
}

// ---------------------------------------------------------------------------
// Currency and money
// ---------------------------------------------------------------------------

const CURRENCY_WHAT: &str = "currency code";
const CURRENCY_FIELD: &str = "currency";

/// An ISO 4217 alphabetic currency code: exactly three letters `A-Z`.
///
/// Any three letters are accepted rather than a fixed list, because the ISO
/// 4217 list changes (new and withdrawn codes); which currencies the ledger
/// admits is policy, decided elsewhere. [`Currency::parse`] accepts ASCII
/// lower case and normalises it.
///
/// Binary form: 3 raw ASCII bytes (a fixed-size tuple, no length prefix).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 3]", into = "[u8; 3]")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Chinese yuan renminbi.
    pub const CNY: Currency = Currency(*b"CNY");
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");

    /// Parses a three-letter code (ASCII lower case accepted).
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, CURRENCY_WHAT, s)?;
        let got = s.chars().count();
        if got != 3 {
            return Err(IdError::CurrencyLength { field, got });
        }
        let mut bytes = [0u8; 3];
        for (i, (slot, ch)) in bytes.iter_mut().zip(s.chars()).enumerate() {
            if !ch.is_ascii_alphabetic() {
                return Err(IdError::CurrencyChar { field, ch, position: i.saturating_add(1) });
            }
            *slot = u8::try_from(ch.to_ascii_uppercase()).unwrap_or(b'A');
        }
        Self::from_canonical(field, bytes)
    }

    fn from_canonical(field: &'static str, bytes: [u8; 3]) -> Result<Self, IdError> {
        for (i, &b) in bytes.iter().enumerate() {
            if !b.is_ascii_uppercase() {
                return Err(IdError::CurrencyChar { field, ch: char::from(b), position: i.saturating_add(1) });
            }
        }
        Ok(Self(bytes))
    }

    /// The canonical three-letter code.
    pub fn as_str(&self) -> &str {
        // Invariant: ASCII letters, so this never fails.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TryFrom<[u8; 3]> for Currency {
    type Error = IdError;

    /// Validates the stored form (upper case only).
    fn try_from(bytes: [u8; 3]) -> Result<Self, IdError> {
        check_stored_upper(CURRENCY_FIELD, CURRENCY_WHAT, &bytes)?;
        Self::from_canonical(CURRENCY_FIELD, bytes)
    }
}

impl From<Currency> for [u8; 3] {
    fn from(c: Currency) -> Self {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// An amount of money in integer minor units.
///
/// The amount is always interpreted with **two** decimal places (the ISO 4217
/// minor unit of CNY, USD, EUR, ...): `fen` is 1/100 of the major unit
/// (yuan for CNY). Currencies with a different minor unit (e.g. JPY 0, KWD 3)
/// must not be used with this type.
///
/// Binary form: `fen` as `u64` little-endian, then the 3 currency bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units (1/100 of the major unit).
    pub fen: u64,
    /// Currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// Parses an exact decimal amount in major units, e.g. `"1250000.00"`
    /// yuan → 125 000 000 fen.
    ///
    /// Accepted: digits, optionally followed by `.` and one or two digits
    /// (`"0"`, `"0.5"`, `"12.34"`; leading zeros are harmless and accepted).
    /// Rejected, each with its own message: empty input, whitespace, a sign,
    /// exponent notation, thousands separators, a bare `.` at either end
    /// (`".5"`, `"5."`), more than two fractional digits, non-ASCII digits,
    /// and amounts above `u64::MAX` fen (184467440737095516.15).
    pub fn parse_decimal(field: &'static str, s: &str, currency: Currency) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::AmountEmpty { field });
        }
        reject_whitespace(field, "amount", s)?;
        let mut dot = None;
        for (i, ch) in s.chars().enumerate() {
            match ch {
                '0'..='9' => {}
                '.' if dot.is_none() => dot = Some(i),
                '+' | '-' => return Err(IdError::AmountSign { field, ch }),
                'e' | 'E' => return Err(IdError::AmountExponent { field, ch }),
                ',' | '，' | '_' | '\'' => return Err(IdError::AmountSeparator { field, ch }),
                _ => {
                    return Err(IdError::AmountChar { field, ch, position: i.saturating_add(1) });
                }
            }
        }
        // Only ASCII characters remain, so byte indices equal char indices.
        let (int_part, frac_part) = match s.split_once('.') {
            Some((int_part, frac_part)) => {
                if int_part.is_empty() {
                    return Err(IdError::AmountNoIntegerDigits { field });
                }
                if frac_part.is_empty() {
                    return Err(IdError::AmountNoFractionDigits { field });
                }
                (int_part, frac_part)
            }
            None => (s, ""),
        };
        if frac_part.len() > 2 {
            return Err(IdError::AmountTooManyDecimals { field, got: frac_part.len() });
        }
        let overflow = || IdError::AmountOverflow { field };
        let mut major: u64 = 0;
        for b in int_part.bytes() {
            major =
                major.checked_mul(10).and_then(|m| m.checked_add(u64::from(digit_value(b)))).ok_or_else(overflow)?;
        }
        let mut minor: u64 = 0;
        for i in 0..2 {
            let d = frac_part.as_bytes().get(i).map_or(0, |&b| digit_value(b));
            minor = minor * 10 + u64::from(d);
        }
        let fen = major.checked_mul(100).and_then(|m| m.checked_add(minor)).ok_or_else(overflow)?;
        Ok(Self { fen, currency })
    }

    /// The amount in major units with exactly two decimals and no
    /// separators, e.g. `"1250000.00"`.
    pub fn to_decimal_string(&self) -> String {
        format!("{}.{:02}", self.fen / 100, self.fen % 100)
    }
}

/// Human form with thousands separators and the currency code, e.g.
/// `1,250,000.00 CNY`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let major = (self.fen / 100).to_string();
        let len = major.len();
        let mut grouped = String::with_capacity(len.saturating_add(len / 3));
        for (i, ch) in major.chars().enumerate() {
            if i > 0 && (len - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "{grouped}.{:02} {}", self.fen % 100, self.currency)
    }
}

// ---------------------------------------------------------------------------
// Date
// ---------------------------------------------------------------------------

const DATE_FIELD: &str = "date";
const DATE_WHAT: &str = "date";
const MS_PER_DAY: u64 = 86_400_000;
/// Days from 1970-01-01 to 9999-12-31.
const MAX_EPOCH_DAY: i64 = 2_932_896;

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`). Inputs are validated dates, so no overflow occurs.
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`] for days from 1900-01-01 to `MAX_EPOCH_DAY`.
fn civil_from_days(z: i64) -> (u32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let cvt = |v: i64| u32::try_from(v).unwrap_or(0);
    (cvt(y), cvt(m), cvt(d))
}

/// A proleptic Gregorian calendar date (no time zone), years 1900..=9999.
///
/// Stored as the integer `yyyymmdd` (e.g. 2024-02-29 is `20240229`), so the
/// derived ordering is chronological. Rules: month 1..=12; day within the
/// month, February having 29 days in leap years (divisible by 4, except
/// centuries not divisible by 400).
///
/// Human form: `YYYY-MM-DD` (ISO 8601 calendar date, extended format).
/// Binary form: the `u32` `yyyymmdd`, little-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Date(u32);

impl Date {
    /// Builds a validated date.
    pub fn new(field: &'static str, year: u16, month: u8, day: u8) -> Result<Self, IdError> {
        Self::validate(field, u32::from(year), u32::from(month), u32::from(day))
    }

    fn validate(field: &'static str, year: u32, month: u32, day: u32) -> Result<Self, IdError> {
        if !(1900..=9999).contains(&year) {
            return Err(IdError::YearRange { field, year });
        }
        if !(1..=12).contains(&month) {
            return Err(IdError::MonthRange { field, month });
        }
        let max = days_in_month(year, month);
        if !(1..=max).contains(&day) {
            return Err(IdError::DayRange { field, year, month, day, max });
        }
        Ok(Self(year * 10_000 + month * 100 + day))
    }

    /// Parses `YYYY-MM-DD` (exactly 10 characters, ASCII digits).
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, DATE_WHAT, s)?;
        let b = s.as_bytes();
        let ok = b.len() == 10
            && b.iter().enumerate().all(|(i, &c)| match i {
                4 | 7 => c == b'-',
                _ => c.is_ascii_digit(),
            });
        if !ok {
            return Err(IdError::DateFormat { field });
        }
        let num = |r: core::ops::Range<usize>| {
            b.get(r).unwrap_or_default().iter().fold(0u32, |acc, &c| acc * 10 + digit_value(c))
        };
        Self::validate(field, num(0..4), num(5..7), num(8..10))
    }

    /// The UTC calendar date containing the Unix timestamp `ms`
    /// (milliseconds since 1970-01-01T00:00:00Z). Errors (field `timestamp`)
    /// if the date would be after 9999-12-31.
    pub fn from_unix_ms(ms: u64) -> Result<Self, IdError> {
        let too_late = IdError::TimestampRange { field: "timestamp", ms };
        let days = i64::try_from(ms / MS_PER_DAY).map_err(|_| too_late.clone())?;
        if days > MAX_EPOCH_DAY {
            return Err(too_late);
        }
        let (y, m, d) = civil_from_days(days);
        Self::validate("timestamp", y, m, d)
    }

    /// The date `days` after 1970-01-01 (`None` outside 1900-01-01..=9999-12-31).
    pub fn from_days(days: i64) -> Option<Self> {
        if !(days_from_civil(1900, 1, 1)..=MAX_EPOCH_DAY).contains(&days) {
            return None;
        }
        let (y, m, d) = civil_from_days(days);
        Self::validate("date", y, m, d).ok()
    }

    /// Days since 1970-01-01 (negative before 1970).
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year().into(), self.month().into(), self.day().into())
    }

    /// Year, 1900..=9999.
    pub fn year(&self) -> u16 {
        u16::try_from(self.0 / 10_000).unwrap_or(0)
    }

    /// Month, 1..=12.
    pub fn month(&self) -> u8 {
        u8::try_from(self.0 / 100 % 100).unwrap_or(0)
    }

    /// Day of month, 1..=31.
    pub fn day(&self) -> u8 {
        u8::try_from(self.0 % 100).unwrap_or(0)
    }

    /// The stored `yyyymmdd` integer.
    pub fn yyyymmdd(&self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Date {
    type Error = IdError;

    /// Validates a stored `yyyymmdd` integer.
    fn try_from(v: u32) -> Result<Self, IdError> {
        Self::validate(DATE_FIELD, v / 10_000, v / 100 % 100, v % 100)
    }
}

impl From<Date> for u32 {
    fn from(d: Date) -> Self {
        d.0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year(), self.month(), self.day())
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

// ---------------------------------------------------------------------------
// Period
// ---------------------------------------------------------------------------

const PERIOD_FIELD: &str = "period";

/// An R&D reporting period: a whole calendar year or one quarter of it.
///
/// `quarter` 0 means the whole year, 1..=4 a calendar quarter (Q1 =
/// January-March, ...). Year 1900..=9999, as for [`Date`]. Ordering is by
/// year, then quarter, with the whole year before its quarters.
///
/// Human form: `2024` (whole year), `2024Q3`; [`Period::parse`] also accepts
/// `2024-Q3` and a lower-case `q`. `2024Q0` is rejected: a whole year is
/// written as just the year.
/// Binary form: `year` as `u16` little-endian, then `quarter` as `u8`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u16, u8)", into = "(u16, u8)")]
pub struct Period {
    year: u16,
    quarter: u8,
}

impl Period {
    /// Builds a validated period (`quarter` 0 = whole year).
    pub fn new(field: &'static str, year: u16, quarter: u8) -> Result<Self, IdError> {
        if !(1900..=9999).contains(&year) {
            return Err(IdError::YearRange { field, year: year.into() });
        }
        if quarter > 4 {
            return Err(IdError::PeriodQuarter { field, quarter });
        }
        Ok(Self { year, quarter })
    }

    /// Parses `YYYY`, `YYYYQn` or `YYYY-Qn` (`n` in 1..=4).
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, "period", s)?;
        let b = s.as_bytes();
        let format = IdError::PeriodFormat { field };
        let (year_part, quarter_digit) = match b {
            [y @ .., q, n] if q.eq_ignore_ascii_case(&b'q') => {
                let y = match y {
                    [y @ .., b'-'] => y,
                    y => y,
                };
                (y, Some(*n))
            }
            y => (y, None),
        };
        if year_part.len() != 4 || !year_part.iter().all(u8::is_ascii_digit) {
            return Err(format);
        }
        let year = year_part.iter().fold(0u16, |acc, &c| acc * 10 + u16::from(c.wrapping_sub(b'0')));
        let quarter = match quarter_digit {
            None => 0,
            Some(n) if n.is_ascii_digit() => {
                let q = n.wrapping_sub(b'0');
                if q == 0 {
                    return Err(IdError::PeriodQuarter { field, quarter: q });
                }
                q
            }
            Some(_) => return Err(format),
        };
        Self::new(field, year, quarter)
    }

    /// Whole year of `year`.
    pub fn whole_year(field: &'static str, year: u16) -> Result<Self, IdError> {
        Self::new(field, year, 0)
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The quarter: 0 for a whole year, else 1..=4.
    pub fn quarter(&self) -> u8 {
        self.quarter
    }

    /// Whether this period is a whole year.
    pub fn is_whole_year(&self) -> bool {
        self.quarter == 0
    }

    /// Whether `date` falls within this period.
    pub fn contains(&self, date: Date) -> bool {
        if date.year() != self.year {
            return false;
        }
        self.quarter == 0 || (date.month().saturating_sub(1)) / 3 + 1 == self.quarter
    }
}

impl TryFrom<(u16, u8)> for Period {
    type Error = IdError;

    /// Validates the stored `(year, quarter)`.
    fn try_from((year, quarter): (u16, u8)) -> Result<Self, IdError> {
        Self::new(PERIOD_FIELD, year, quarter)
    }
}

impl From<Period> for (u16, u8) {
    fn from(p: Period) -> Self {
        (p.year, p.quarter)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quarter == 0 { write!(f, "{:04}", self.year) } else { write!(f, "{:04}Q{}", self.year, self.quarter) }
    }
}

impl fmt::Debug for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Period({self})")
    }
}

// ---------------------------------------------------------------------------
// Member name
// ---------------------------------------------------------------------------

const MEMBER_NAME_FIELD: &str = "member_name";

/// The name of a consortium member: 1..=32 characters from `a-z`, `0-9` and
/// `-`, not starting or ending with `-` (like a DNS label; consecutive
/// hyphens are allowed). Upper case is rejected, not normalised: names are
/// system identifiers, so only one spelling exists.
///
/// Binary form: a bincode string (`u64` length, then the bytes).
/// Deserialization asks for a borrowed `str` and validates it before
/// allocating, so with bincode's slice decoder a forged huge length prefix is
/// an error rather than a huge allocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberName(String);

impl MemberName {
    /// Validates a member name.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, IdError> {
        reject_whitespace(field, "member name", s)?;
        let got = s.chars().count();
        if !(1..=32).contains(&got) {
            return Err(IdError::MemberNameLength { field, got });
        }
        for (i, ch) in s.chars().enumerate() {
            if !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
                return Err(IdError::MemberNameChar { field, ch, position: i.saturating_add(1) });
            }
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(IdError::MemberNameHyphen { field });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates a name read from an encoding (serde's and the hand-written decoder's one rule).
    ///
    /// The bytes are checked first against exactly the set [`MemberName::parse`] accepts (1
    /// to 32 of `a-z0-9-`, ASCII, so bytes are characters; no hyphen at either end): a name
    /// that passes is that set's; anything else goes through `parse` for its precise error.
    pub(crate) fn from_stored(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        let allowed = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        if (1..=32).contains(&b.len()) && b.iter().all(allowed) && b[0] != b'-' && b[b.len() - 1] != b'-' {
            return Ok(Self(s.to_owned()));
        }
        Self::parse(MEMBER_NAME_FIELD, s)
    }
}

impl TryFrom<String> for MemberName {
    type Error = IdError;

    /// Validates a stored name.
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(MEMBER_NAME_FIELD, &s)?;
        Ok(Self(s))
    }
}

impl<'de> Deserialize<'de> for MemberName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl serde::de::Visitor<'_> for NameVisitor {
            type Value = MemberName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a consortium member name")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MemberName, E> {
                MemberName::from_stored(s).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(NameVisitor)
    }
}

impl Serialize for MemberName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MemberName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL_USCCS: [&str; 3] = ["914403001922038216", "91440300708461136T", "91330100716105852F"];

    fn cfg()
    -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Fixint, bincode::config::NoLimit>
    {
        bincode::config::legacy()
    }

    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, cfg()).expect("encode")
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        match bincode::serde::decode_from_slice::<T, _>(bytes, cfg()) {
            Ok((v, used)) if used == bytes.len() => Ok(v),
            Ok((_, used)) => Err(format!("trailing bytes: used {used} of {}", bytes.len())),
            Err(bincode::error::DecodeError::OtherString(msg)) => Err(msg),
            Err(e) => Err(format!("other decode error: {e:?}")),
        }
    }

    fn err_msg<T: fmt::Debug>(r: Result<T, IdError>) -> String {
        r.expect_err("expected an error").to_string()
    }

    // ----- USCC -----

    #[test]
    fn uscc_real_codes_accepted() {
        for code in REAL_USCCS {
            let u = Uscc::parse("enterprise", code).expect(code);
            assert_eq!(u.as_str(), code);
            assert_eq!(u.to_string(), code);
        }
    }

    #[test]
    fn uscc_parts() {
        let u = Uscc::parse("enterprise", "91440300708461136T").unwrap();
        assert_eq!(u.registration_authority(), '9');
        assert_eq!(u.entity_type(), '1');
        assert_eq!(u.division_code(), "440300");
        assert_eq!(u.organization_code(), "708461136");
        assert_eq!(u.check_char(), 'T');
        assert_eq!(format!("{u:?}"), "Uscc(91440300708461136T)");
    }

    #[test]
    fn uscc_check_weights_are_powers_of_three() {
        let mut w = 1u32;
        for expected in USCC_WEIGHTS {
            assert_eq!(w, expected);
            w = w * 3 % 31;
        }
    }

    #[test]
    fn uscc_every_single_substitution_rejected() {
        let code = REAL_USCCS[0].as_bytes();
        let mut tried = 0;
        for pos in 0..18 {
            for &c in USCC_CHARSET {
                if c == code[pos] {
                    continue;
                }
                let mut bad = code.to_vec();
                bad[pos] = c;
                let s = String::from_utf8(bad).unwrap();
                assert!(Uscc::parse("enterprise", &s).is_err(), "accepted {s}");
                tried += 1;
            }
        }
        assert_eq!(tried, 18 * 30);
    }

    #[test]
    fn uscc_wrong_check_message() {
        assert_eq!(
            err_msg(Uscc::parse("enterprise", "914403001922038217")),
            "enterprise: check character is '7' but should be '6'"
        );
    }

    #[test]
    fn uscc_wrong_length() {
        for (s, got) in [("", 0), ("91440300192203821", 17), ("9144030019220382160", 19)] {
            assert_eq!(Uscc::parse("enterprise", s), Err(IdError::UsccLength { field: "enterprise", got }));
        }
        assert_eq!(
            err_msg(Uscc::parse("enterprise", "91440300192203821")),
            "enterprise: unified social credit code must be 18 characters, got 17"
        );
    }

    #[test]
    fn uscc_forbidden_letters_rejected() {
        for bad in ['I', 'O', 'Z', 'S', 'V'] {
            // Position 9 (organization code) accepts letters in general.
            let mut s: Vec<char> = REAL_USCCS[0].chars().collect();
            s[8] = bad;
            let s: String = s.into_iter().collect();
            assert_eq!(
                Uscc::parse("enterprise", &s),
                Err(IdError::UsccChar { field: "enterprise", ch: bad, position: 9 }),
                "{s}"
            );
        }
        assert_eq!(
            err_msg(Uscc::parse("enterprise", "9144I3001922038216")),
            "enterprise: character 'I' at position 5 is not allowed in a unified social credit code (allowed: 0-9 and A-Z except I, O, Z, S, V)"
        );
    }

    #[test]
    fn uscc_lowercase_normalised() {
        let u = Uscc::parse("enterprise", "91440300708461136t").unwrap();
        assert_eq!(u.as_str(), "91440300708461136T");
        // Lower-case forbidden letters are still forbidden.
        assert_eq!(
            Uscc::parse("enterprise", "91440300i08461136T"),
            Err(IdError::UsccChar { field: "enterprise", ch: 'i', position: 9 })
        );
    }

    #[test]
    fn uscc_non_ascii_and_whitespace_rejected() {
        // Full-width digit nine: one character, so length is 18.
        assert_eq!(
            Uscc::parse("enterprise", "９14403001922038216"),
            Err(IdError::UsccChar { field: "enterprise", ch: '９', position: 1 })
        );
        for (s, position) in [
            (" 914403001922038216", 1),
            ("914403001922038216 ", 19),
            ("91440300 922038216", 9),
            ("914403001922038216\n", 19),
        ] {
            assert_eq!(
                Uscc::parse("enterprise", s),
                Err(IdError::Whitespace { field: "enterprise", what: "unified social credit code", position }),
                "{s:?}"
            );
        }
        assert_eq!(
            err_msg(Uscc::parse("enterprise", " 914403001922038216")),
            "enterprise: unified social credit code must not contain whitespace (found at position 1); input is not trimmed"
        );
    }

    #[test]
    fn uscc_division_code_must_be_digits() {
        // Build a code with a letter at position 4 and a correct check char,
        // so only the division rule can reject it.
        let mut first17 = *b"91A40300192203821";
        first17[2] = b'A';
        let check = uscc_check_char(&first17);
        let mut s = String::from_utf8(first17.to_vec()).unwrap();
        s.push(char::from(check));
        assert_eq!(
            Uscc::parse("enterprise", &s),
            Err(IdError::UsccDivision { field: "enterprise", ch: 'A', position: 3 })
        );
        assert!(err_msg(Uscc::parse("enterprise", &s)).contains("positions 3-8 are the administrative division code"));
    }

    #[test]
    fn uscc_bincode_golden_and_roundtrip() {
        let u = Uscc::parse("enterprise", REAL_USCCS[1]).unwrap();
        let bytes = encode(&u);
        assert_eq!(bytes, b"91440300708461136T".to_vec());
        assert_eq!(decode::<Uscc>(&bytes), Ok(u));
    }

    #[test]
    fn uscc_decode_revalidates() {
        assert_eq!(
            decode::<Uscc>(b"914403001922038217"),
            Err("uscc: check character is '7' but should be '6'".to_owned())
        );
        assert_eq!(
            decode::<Uscc>(b"91440300708461136t"),
            Err("uscc: stored unified social credit code is not in canonical form (lower-case letter at position 18)"
                .to_owned())
        );
        let mut non_ascii = *b"914403001922038216";
        non_ascii[0] = 0xFF;
        assert_eq!(
            decode::<Uscc>(&non_ascii),
            Err("uscc: stored unified social credit code has invalid byte 0xFF at position 1".to_owned())
        );
        assert!(decode::<Uscc>(b"91440300192203821").is_err(), "too short");
    }

    fn uscc_char() -> impl Strategy<Value = u8> {
        proptest::sample::select(USCC_CHARSET.to_vec())
    }

    fn valid_uscc() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(uscc_char(), 2),
            proptest::collection::vec(proptest::sample::select(b"0123456789".to_vec()), 6),
            proptest::collection::vec(uscc_char(), 9),
        )
            .prop_map(|(a, b, c)| {
                let mut first17 = [0u8; 17];
                for (slot, x) in first17.iter_mut().zip(a.iter().chain(&b).chain(&c)) {
                    *slot = *x;
                }
                let mut s = String::from_utf8(first17.to_vec()).unwrap();
                s.push(char::from(uscc_check_char(&first17)));
                s
            })
    }

    proptest! {
        #[test]
        fn prop_uscc_roundtrip(s in valid_uscc()) {
            let u = Uscc::parse("enterprise", &s).unwrap();
            prop_assert_eq!(Uscc::parse("enterprise", &u.to_string()), Ok(u));
            prop_assert_eq!(Uscc::parse("enterprise", &s.to_ascii_lowercase()), Ok(u));
            prop_assert_eq!(decode::<Uscc>(&encode(&u)), Ok(u));
        }

        #[test]
        fn prop_parsers_never_panic(s in any::<String>()) {
            let _ = Uscc::parse("f", &s);
            let _ = PatentNumber::parse("f", &s);
            let _ = Currency::parse("f", &s);
            let _ = Money::parse_decimal("f", &s, Currency::CNY);
            let _ = Date::parse("f", &s);
            let _ = Period::parse("f", &s);
            let _ = MemberName::parse("f", &s);
        }

        #[test]
        fn prop_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode::<Uscc>(&bytes);
            let _ = decode::<PatentNumber>(&bytes);
            let _ = decode::<Money>(&bytes);
            let _ = decode::<Date>(&bytes);
            let _ = decode::<Period>(&bytes);
            let _ = decode::<MemberName>(&bytes);
        }

        #[test]
        fn prop_patent_roundtrip(year in 2003u32..=2100, kind in proptest::sample::select(b"12389".to_vec()), serial in 0u32..10_000_000) {
            let body = format!("{year}{}{serial:07}", char::from(kind));
            let mut digits = [0u8; 12];
            digits.copy_from_slice(body.as_bytes());
            let check = char::from(patent_check_char(&digits));
            let p = PatentNumber::parse("patent", &format!("{body}{check}")).unwrap();
            prop_assert_eq!(p.to_string(), format!("CN{body}.{check}"));
            prop_assert_eq!(PatentNumber::parse("patent", &p.to_string()), Ok(p));
            prop_assert_eq!(decode::<PatentNumber>(&encode(&p)), Ok(p));
        }

        #[test]
        fn prop_money_roundtrip(fen in any::<u64>()) {
            let m = Money { fen, currency: Currency::CNY };
            prop_assert_eq!(Money::parse_decimal("amount", &m.to_decimal_string(), Currency::CNY), Ok(m));
            prop_assert_eq!(decode::<Money>(&encode(&m)), Ok(m));
        }

        #[test]
        fn prop_date_epoch_roundtrip(days in 0u64..=2_932_896, ms_in_day in 0u64..86_400_000) {
            let d = Date::from_unix_ms(days * 86_400_000 + ms_in_day).unwrap();
            prop_assert_eq!(d.days_since_epoch(), i64::try_from(days).unwrap());
            prop_assert_eq!(Date::parse("date", &d.to_string()), Ok(d));
            prop_assert_eq!(decode::<Date>(&encode(&d)), Ok(d));
        }
    }

    // ----- Patent numbers -----

    #[test]
    fn patent_valid_forms() {
        let canonical = "CN200310102344.5";
        for s in [
            "CN200310102344.5",
            "200310102344.5",
            "CN2003101023445",
            "2003101023445",
            "cn200310102344.5",
            "Cn200310102344.5",
        ] {
            let p = PatentNumber::parse("patent", s).expect(s);
            assert_eq!(p.to_string(), canonical, "{s}");
        }
        let p = PatentNumber::parse("patent", canonical).unwrap();
        assert_eq!(p.year(), 2003);
        assert_eq!(p.kind(), PatentKind::Invention);
        assert_eq!(p.digits(), "200310102344");
        assert_eq!(p.check_char(), '5');
        // 2·2+0·3+0·4+3·5+1·6+0·7+1·8+0·9+2·2+3·3+4·4+4·5 = 82 ≡ 5 (mod 11)
        assert_eq!(patent_check_char(b"200310102344"), b'5');
    }

    #[test]
    fn patent_check_digit_x() {
        // 202310123402: weighted sum ≡ 10 (mod 11), so the check is X.
        assert_eq!(patent_check_char(b"202310123402"), b'X');
        for s in ["CN202310123402.X", "cn202310123402.x", "202310123402x"] {
            let p = PatentNumber::parse("patent", s).expect(s);
            assert_eq!(p.to_string(), "CN202310123402.X");
            assert_eq!(p.check_char(), 'X');
        }
        assert_eq!(
            err_msg(PatentNumber::parse("patent", "CN202310123402.0")),
            "patent: check digit is '0' but should be 'X'"
        );
        assert_eq!(encode(&PatentNumber::parse("patent", "CN202310123402.X").unwrap()), b"202310123402X".to_vec());
    }

    #[test]
    fn patent_wrong_check_digit() {
        assert_eq!(
            err_msg(PatentNumber::parse("patent", "CN200310102344.4")),
            "patent: check digit is '4' but should be '5'"
        );
        assert_eq!(
            PatentNumber::parse("patent", "CN200310102344.A"),
            Err(IdError::PatentCheckChar { field: "patent", ch: 'A' })
        );
    }

    #[test]
    fn patent_prefix() {
        for (s, prefix) in [
            ("ZL200310102344.5", "ZL"),
            ("US200310102344.5", "US"),
            ("C200310102344.5", "C"),
            ("CNN200310102344.5", "CNN"),
        ] {
            assert_eq!(
                PatentNumber::parse("patent", s),
                Err(IdError::PatentPrefix { field: "patent", prefix: prefix.to_owned() }),
                "{s}"
            );
        }
        assert!(err_msg(PatentNumber::parse("patent", "ZL200310102344.5")).contains("starts with \"CN\""));
    }

    #[test]
    fn patent_year_and_type() {
        // Check digits are correct so that only the year/type rule fires.
        let with_check = |body: &[u8; 12]| {
            format!("{}.{}", String::from_utf8(body.to_vec()).unwrap(), char::from(patent_check_char(body)))
        };
        assert_eq!(
            PatentNumber::parse("patent", &with_check(b"200210102344")),
            Err(IdError::PatentYear { field: "patent", year: 2002 })
        );
        assert_eq!(
            PatentNumber::parse("patent", &with_check(b"210110102344")),
            Err(IdError::PatentYear { field: "patent", year: 2101 })
        );
        assert!(PatentNumber::parse("patent", &with_check(b"210010102344")).is_ok());
        for t in [b'0', b'4', b'5', b'6', b'7'] {
            let mut body = *b"200310102344";
            body[4] = t;
            assert_eq!(
                PatentNumber::parse("patent", &with_check(&body)),
                Err(IdError::PatentType { field: "patent", ch: char::from(t) })
            );
        }
        for (t, kind) in [
            (b'1', PatentKind::Invention),
            (b'2', PatentKind::UtilityModel),
            (b'3', PatentKind::Design),
            (b'8', PatentKind::PctInvention),
            (b'9', PatentKind::PctUtilityModel),
        ] {
            let mut body = *b"200310102344";
            body[4] = t;
            assert_eq!(PatentNumber::parse("patent", &with_check(&body)).unwrap().kind(), kind);
        }
    }

    #[test]
    fn patent_shape_errors() {
        let p = |s| PatentNumber::parse("patent", s);
        assert_eq!(p("CN20031010234.5"), Err(IdError::PatentDigitCount { field: "patent", got: 11 }));
        assert_eq!(p("CN2003101023444.5"), Err(IdError::PatentDigitCount { field: "patent", got: 13 }));
        assert_eq!(p("CN200310102344."), Err(IdError::PatentCheckLength { field: "patent", got: 0 }));
        assert_eq!(p("CN200310102344.55"), Err(IdError::PatentCheckLength { field: "patent", got: 2 }));
        assert_eq!(p("CN89100002.X"), Err(IdError::PatentLegacyFormat { field: "patent" }));
        assert_eq!(p("891000021"), Err(IdError::PatentLegacyFormat { field: "patent" }));
        assert_eq!(p("CN2003-10102344.5"), Err(IdError::PatentChar { field: "patent", ch: '-', position: 7 }));
        assert_eq!(p("CN200310102344..5"), Err(IdError::PatentChar { field: "patent", ch: '.', position: 16 }));
        assert_eq!(p("CN２00310102344.5"), Err(IdError::PatentChar { field: "patent", ch: '２', position: 3 }));
        assert_eq!(p(""), Err(IdError::PatentDigitCount { field: "patent", got: 0 }));
        assert_eq!(p("CN"), Err(IdError::PatentDigitCount { field: "patent", got: 0 }));
        assert!(matches!(p(" CN200310102344.5"), Err(IdError::Whitespace { position: 1, .. })));
    }

    #[test]
    fn patent_decode_revalidates() {
        let p = PatentNumber::parse("patent", "CN200310102344.5").unwrap();
        let bytes = encode(&p);
        assert_eq!(bytes, b"2003101023445".to_vec());
        assert_eq!(decode::<PatentNumber>(&bytes), Ok(p));
        assert_eq!(
            decode::<PatentNumber>(b"2003101023444"),
            Err("patent_number: check digit is '4' but should be '5'".to_owned())
        );
        assert_eq!(
            decode::<PatentNumber>(b"202310123402x"),
            Err("patent_number: stored patent application number is not in canonical form (lower-case letter at position 13)".to_owned())
        );
        assert!(decode::<PatentNumber>(b"20031010234.5").is_err());
    }

    // ----- Currency and money -----

    #[test]
    fn currency_rules() {
        assert_eq!(Currency::parse("currency", "CNY"), Ok(Currency::CNY));
        assert_eq!(Currency::parse("currency", "cny"), Ok(Currency::CNY));
        assert_eq!(Currency::parse("currency", "XTS").unwrap().as_str(), "XTS");
        assert_eq!(
            err_msg(Currency::parse("currency", "CN")),
            "currency: currency code must be 3 letters (ISO 4217), got 2 characters"
        );
        assert_eq!(
            Currency::parse("currency", "C1Y"),
            Err(IdError::CurrencyChar { field: "currency", ch: '1', position: 2 })
        );
        assert_eq!(
            Currency::parse("currency", "CNÝ"),
            Err(IdError::CurrencyChar { field: "currency", ch: 'Ý', position: 3 })
        );
        assert!(matches!(Currency::parse("currency", "CNY "), Err(IdError::Whitespace { .. })));
        assert_eq!(encode(&Currency::CNY), b"CNY".to_vec());
        assert_eq!(decode::<Currency>(b"USD"), Ok(Currency::USD));
        assert!(decode::<Currency>(b"usd").is_err());
        assert_eq!(
            decode::<Currency>(b"U1D"),
            Err("currency: character '1' at position 2 is not allowed in a currency code (ISO 4217 alphabetic codes use A-Z)".to_owned())
        );
    }

    #[test]
    fn money_valid_table() {
        for (s, fen) in [
            ("0", 0u64),
            ("0.0", 0),
            ("0.00", 0),
            ("0.01", 1),
            ("0.1", 10),
            ("0.5", 50),
            ("1", 100),
            ("12.3", 1230),
            ("007.50", 750),
            ("1250000.00", 125_000_000),
            ("184467440737095516.15", u64::MAX),
            ("184467440737095516", 18_446_744_073_709_551_600),
        ] {
            assert_eq!(
                Money::parse_decimal("amount", s, Currency::CNY),
                Ok(Money { fen, currency: Currency::CNY }),
                "{s}"
            );
        }
    }

    #[test]
    fn money_invalid_table() {
        let f = "amount";
        for (s, expected) in [
            ("", IdError::AmountEmpty { field: f }),
            ("-1", IdError::AmountSign { field: f, ch: '-' }),
            ("+1", IdError::AmountSign { field: f, ch: '+' }),
            ("1e5", IdError::AmountExponent { field: f, ch: 'e' }),
            ("1E5", IdError::AmountExponent { field: f, ch: 'E' }),
            ("1,000", IdError::AmountSeparator { field: f, ch: ',' }),
            ("1_000", IdError::AmountSeparator { field: f, ch: '_' }),
            ("1.234", IdError::AmountTooManyDecimals { field: f, got: 3 }),
            (" 1", IdError::Whitespace { field: f, what: "amount", position: 1 }),
            ("1 ", IdError::Whitespace { field: f, what: "amount", position: 2 }),
            ("１", IdError::AmountChar { field: f, ch: '１', position: 1 }),
            ("1.2.3", IdError::AmountChar { field: f, ch: '.', position: 4 }),
            ("¥1", IdError::AmountChar { field: f, ch: '¥', position: 1 }),
            (".5", IdError::AmountNoIntegerDigits { field: f }),
            (".", IdError::AmountNoIntegerDigits { field: f }),
            ("5.", IdError::AmountNoFractionDigits { field: f }),
            ("184467440737095516.16", IdError::AmountOverflow { field: f }),
            ("184467440737095517", IdError::AmountOverflow { field: f }),
            ("99999999999999999999999999", IdError::AmountOverflow { field: f }),
        ] {
            assert_eq!(Money::parse_decimal(f, s, Currency::CNY), Err(expected), "{s:?}");
        }
        assert_eq!(
            err_msg(Money::parse_decimal(f, "1.234", Currency::CNY)),
            "amount: at most 2 digits after the decimal point, got 3"
        );
        assert_eq!(
            err_msg(Money::parse_decimal(f, ".5", Currency::CNY)),
            "amount: amount needs a digit before the decimal point (write 0.5, not .5)"
        );
    }

    #[test]
    fn money_display() {
        let m = |fen| Money { fen, currency: Currency::CNY };
        assert_eq!(m(125_000_000).to_string(), "1,250,000.00 CNY");
        assert_eq!(m(125_000_000).to_decimal_string(), "1250000.00");
        assert_eq!(m(0).to_string(), "0.00 CNY");
        assert_eq!(m(5).to_string(), "0.05 CNY");
        assert_eq!(m(99_999).to_string(), "999.99 CNY");
        assert_eq!(m(100_000).to_string(), "1,000.00 CNY");
        assert_eq!(m(u64::MAX).to_string(), "184,467,440,737,095,516.15 CNY");
        assert_eq!(m(u64::MAX).to_decimal_string(), "184467440737095516.15");
    }

    #[test]
    fn money_bincode_golden() {
        let m = Money::parse_decimal("amount", "1250000.00", Currency::CNY).unwrap();
        let bytes = encode(&m);
        assert_eq!(bytes, vec![0x40, 0x59, 0x73, 0x07, 0, 0, 0, 0, b'C', b'N', b'Y']);
        assert_eq!(decode::<Money>(&bytes), Ok(m));
        assert_eq!(
            decode::<Money>(&[0x40, 0x59, 0x73, 0x07, 0, 0, 0, 0, b'C', b'N', b'1']),
            Err("currency: character '1' at position 3 is not allowed in a currency code (ISO 4217 alphabetic codes use A-Z)".to_owned())
        );
    }

    // ----- Dates -----

    #[test]
    fn date_rules() {
        let d = Date::parse("date", "2024-02-29").unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (2024, 2, 29));
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(d.yyyymmdd(), 20_240_229);
        assert!(Date::parse("date", "2000-02-29").is_ok());
        assert_eq!(err_msg(Date::parse("date", "2023-02-29")), "date: day 29 is out of range for 2023-02 (1..=28)");
        assert!(Date::parse("date", "1900-02-29").is_err(), "1900 is not a leap year");
        assert_eq!(err_msg(Date::parse("date", "2024-13-01")), "date: month 13 is out of range 1..=12");
        assert!(Date::parse("date", "2024-00-10").is_err());
        assert!(Date::parse("date", "2024-04-31").is_err());
        assert!(Date::parse("date", "2024-04-00").is_err());
        assert_eq!(err_msg(Date::parse("date", "1899-12-31")), "date: year 1899 is out of range 1900..=9999");
        assert!(Date::parse("date", "1900-01-01").is_ok());
        assert!(Date::parse("date", "9999-12-31").is_ok());
        for bad in ["2024-2-29", "20240229", "2024/02/29", "2024-02-29T00:00", "", "２０24-02-29"] {
            assert_eq!(Date::parse("date", bad), Err(IdError::DateFormat { field: "date" }), "{bad}");
        }
        assert!(matches!(Date::parse("date", "2024-02-29 "), Err(IdError::Whitespace { position: 11, .. })));
        assert_eq!(Date::new("date", 2024, 2, 29), Ok(d));
        assert!(Date::new("date", 2023, 2, 29).is_err());
    }

    #[test]
    fn date_ordering_and_epoch() {
        let p = |s| Date::parse("date", s).unwrap();
        assert!(p("2023-12-31") < p("2024-01-01"));
        assert!(p("2024-01-31") < p("2024-02-01"));
        assert_eq!(p("1970-01-01").days_since_epoch(), 0);
        assert_eq!(p("2024-02-29").days_since_epoch(), 19_782);
        assert_eq!(p("2000-03-01").days_since_epoch(), 11_017);
        assert_eq!(p("1900-01-01").days_since_epoch(), -25_567);
        assert_eq!(p("9999-12-31").days_since_epoch(), 2_932_896);
        assert_eq!(Date::from_unix_ms(0), Ok(p("1970-01-01")));
        assert_eq!(Date::from_unix_ms(19_782 * 86_400_000), Ok(p("2024-02-29")));
        assert_eq!(Date::from_unix_ms(19_783 * 86_400_000 - 1), Ok(p("2024-02-29")));
        assert_eq!(Date::from_unix_ms(2_932_897 * 86_400_000 - 1), Ok(p("9999-12-31")));
        assert_eq!(
            Date::from_unix_ms(2_932_897 * 86_400_000),
            Err(IdError::TimestampRange { field: "timestamp", ms: 2_932_897 * 86_400_000 })
        );
        assert!(Date::from_unix_ms(u64::MAX).is_err());
    }

    #[test]
    fn date_bincode_golden() {
        let d = Date::parse("date", "2024-02-29").unwrap();
        let bytes = encode(&d);
        assert_eq!(bytes, vec![101, 215, 52, 1]); // 20240229 as u32 LE
        assert_eq!(decode::<Date>(&bytes), Ok(d));
        assert_eq!(
            decode::<Date>(&20_230_229u32.to_le_bytes()),
            Err("date: day 29 is out of range for 2023-02 (1..=28)".to_owned())
        );
        assert!(decode::<Date>(&0u32.to_le_bytes()).is_err());
    }

    // ----- Periods -----

    #[test]
    fn period_rules() {
        let p = |s| Period::parse("period", s);
        assert_eq!(p("2024").map(|x| (x.year(), x.quarter())), Ok((2024, 0)));
        assert_eq!(p("2024Q3").map(|x| (x.year(), x.quarter())), Ok((2024, 3)));
        assert_eq!(p("2024-Q3"), p("2024Q3"));
        assert_eq!(p("2024q3"), p("2024Q3"));
        assert_eq!(p("2024").unwrap().to_string(), "2024");
        assert!(p("2024").unwrap().is_whole_year());
        assert_eq!(p("2024-q1").unwrap().to_string(), "2024Q1");
        assert_eq!(
            err_msg(p("2024Q5")),
            "period: quarter 5 is out of range 1..=4 (a whole-year period is written as just the year)"
        );
        assert_eq!(p("2024Q0"), Err(IdError::PeriodQuarter { field: "period", quarter: 0 }));
        for bad in ["", "24", "2024Q", "2024Q10", "2024--Q3", "2024-3", "Q3", "2024 Q3", "2024QQ"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(p("2024Q"), Err(IdError::PeriodFormat { field: "period" }));
        assert_eq!(p("1899"), Err(IdError::YearRange { field: "period", year: 1899 }));
        assert!(p("2024").unwrap() < p("2024Q1").unwrap());
        assert!(p("2024Q4").unwrap() < p("2025").unwrap());
        let d = |s| Date::parse("date", s).unwrap();
        assert!(p("2024Q3").unwrap().contains(d("2024-07-01")));
        assert!(p("2024Q3").unwrap().contains(d("2024-09-30")));
        assert!(!p("2024Q3").unwrap().contains(d("2024-10-01")));
        assert!(p("2024").unwrap().contains(d("2024-12-31")));
        assert!(!p("2024").unwrap().contains(d("2025-01-01")));
    }

    #[test]
    fn period_bincode_golden() {
        let p = Period::parse("period", "2024Q3").unwrap();
        let bytes = encode(&p);
        assert_eq!(bytes, vec![0xE8, 0x07, 3]);
        assert_eq!(decode::<Period>(&bytes), Ok(p));
        assert_eq!(encode(&Period::whole_year("period", 2024).unwrap()), vec![0xE8, 0x07, 0]);
        assert_eq!(
            decode::<Period>(&[0xE8, 0x07, 5]),
            Err("period: quarter 5 is out of range 1..=4 (a whole-year period is written as just the year)".to_owned())
        );
        assert!(decode::<Period>(&[0x6B, 0x07, 1]).is_err(), "year 1899");
    }

    // ----- Member names -----

    #[test]
    fn member_name_rules() {
        let p = |s| MemberName::parse("member", s);
        for ok in ["a", "bank-a", "0", "a--b", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert_eq!(p(ok).map(|m| m.as_str().to_owned()), Ok(ok.to_owned()));
        }
        assert_eq!(p(""), Err(IdError::MemberNameLength { field: "member", got: 0 }));
        assert_eq!(
            err_msg(p("abcdefghijklmnopqrstuvwxyz0123456")),
            "member: member name must be 1 to 32 characters, got 33"
        );
        assert_eq!(p("-a"), Err(IdError::MemberNameHyphen { field: "member" }));
        assert_eq!(p("a-"), Err(IdError::MemberNameHyphen { field: "member" }));
        assert_eq!(p("-"), Err(IdError::MemberNameHyphen { field: "member" }));
        assert_eq!(p("Bank"), Err(IdError::MemberNameChar { field: "member", ch: 'B', position: 1 }));
        assert_eq!(
            err_msg(p("bank_a")),
            "member: character '_' at position 5 is not allowed in a member name (allowed: a-z, 0-9 and '-')"
        );
        assert!(matches!(p("bank a"), Err(IdError::Whitespace { position: 5, .. })));
        assert!(p("bänk").is_err());
    }

    #[test]
    fn member_name_bincode_golden() {
        let m = MemberName::parse("member", "bank-a").unwrap();
        let bytes = encode(&m);
        assert_eq!(bytes, [&[6, 0, 0, 0, 0, 0, 0, 0][..], b"bank-a"].concat());
        assert_eq!(decode::<MemberName>(&bytes), Ok(m));
        let bad = [&[2, 0, 0, 0, 0, 0, 0, 0][..], b"-a"].concat();
        assert_eq!(
            decode::<MemberName>(&bad),
            Err("member_name: member name must not start or end with '-'".to_owned())
        );
        // A forged huge length prefix is an error, not a huge allocation.
        let forged = [&[0xFF; 8][..], b"ab"].concat();
        assert!(decode::<MemberName>(&forged).is_err());
    }

    #[test]
    fn uscc_value_table_is_the_charset_index() {
        for b in 0..=255u8 {
            let searched = USCC_CHARSET.iter().position(|&c| c == b).map(|p| u32::try_from(p).unwrap());
            assert_eq!(uscc_value(b), searched, "byte {b}");
        }
    }

    #[test]
    fn stored_member_names_accept_exactly_what_parse_accepts() {
        let cases =
            ["a", "bank-a", "-a", "a-", "-", "", "A", "bank_a", "bänk", "a b", " a", &"a".repeat(32), &"a".repeat(33)];
        for s in cases {
            assert_eq!(MemberName::from_stored(s), MemberName::parse(MEMBER_NAME_FIELD, s), "{s:?}");
        }
    }

    #[test]
    fn error_field_accessor() {
        assert_eq!(Uscc::parse("enterprise", "").unwrap_err().field(), "enterprise");
        assert_eq!(Money::parse_decimal("fee", "1.234", Currency::CNY).unwrap_err().field(), "fee");
        assert_eq!(Date::try_from(0).unwrap_err().field(), "date");
    }

    #[test]
    fn serde_json_uses_validation_too() {
        // JSON is not the record format, but derive-based decoding still
        // re-validates in any serde format.
        let bad: Result<Date, _> = serde_json::from_str("20230229");
        assert!(bad.unwrap_err().to_string().contains("day 29 is out of range"));
        let ok: Date = serde_json::from_str("20240229").unwrap();
        assert_eq!(ok.to_string(), "2024-02-29");
    }
}
