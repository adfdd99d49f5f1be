"""Character tables of 3GPP TS 23.038, the alphabets an SMS can be written in.

Kept apart from the counting logic in `core.segments` so the tables can be read against the
standard line by line. Each table is written in code order (septet value = position), which
is how the standard prints them, so a wrong or missing cell shows up as a shifted column.

Sources: TS 23.038 section 6.2.1 (default alphabet), 6.2.1.1 (default extension table) and
Annex A.2.1-A.2.3 (Turkish, Spanish, Portuguese national language single shift tables),
cross-checked against two independent open-source transcriptions of the same tables.
"""

from __future__ import annotations

from types import MappingProxyType

# --- 6.2.1 GSM 7 bit default alphabet -------------------------------------------------------
# 128 code values, 0x00..0x7F. 0x1B is the escape to the extension table: it is not a
# character, so a text containing U+001B cannot be written in GSM-7 (it forces UCS-2).
_ESC = None
_DEFAULT_CELLS: tuple[str | None, ...] = (
    # 0x00..0x0F
    "@", "£", "$", "¥", "è", "é", "ù", "ì", "ò", "Ç", "\n", "Ø", "ø", "\r", "Å", "å",
    # 0x10..0x1F (0x1B = escape)
    "Δ", "_", "Φ", "Γ", "Λ", "Ω", "Π", "Ψ", "Σ", "Θ", "Ξ", _ESC, "Æ", "æ", "ß", "É",
    # 0x20..0x2F
    " ", "!", '"', "#", "¤", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/",
    # 0x30..0x3F
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ":", ";", "<", "=", ">", "?",
    # 0x40..0x4F
    "¡", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O",
    # 0x50..0x5F
    "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "Ä", "Ö", "Ñ", "Ü", "§",
    # 0x60..0x6F
    "¿", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o",
    # 0x70..0x7F
    "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "ä", "ö", "ñ", "ü", "à",
)  # fmt: skip

#: The 127 characters of the default alphabet, each one septet.
GSM_BASIC: frozenset[str] = frozenset(c for c in _DEFAULT_CELLS if c is not None)

# --- Single shift (extension) tables: {septet value after ESC: character} ------------------
# A character found only here costs two septets: ESC + its code.

#: 6.2.1.1 default extension table.
_DEFAULT_SHIFT: dict[int, str] = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}  # fmt: skip

#: A.2.1 Turkish single shift table: the default extension plus Ğ İ Ş ç ğ ı ş.
_TURKISH_SHIFT: dict[int, str] = {
    **_DEFAULT_SHIFT,
    0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ", 0x69: "ı", 0x73: "ş",
}  # fmt: skip

#: A.2.2 Spanish single shift table: the default extension plus ç and the acute vowels.
_SPANISH_SHIFT: dict[int, str] = {
    **_DEFAULT_SHIFT,
    0x09: "ç",
    0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú",
    0x61: "á", 0x69: "í", 0x6F: "ó", 0x75: "ú",
}  # fmt: skip

#: A.2.3 Portuguese single shift table. Its Greek capitals (0x12..0x19) duplicate letters
#: of the default alphabet, where they cost one septet; they are kept here for fidelity.
_PORTUGUESE_SHIFT: dict[int, str] = {
    **_DEFAULT_SHIFT,
    0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á", 0x0F: "á",
    0x12: "Φ", 0x13: "Γ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ",
    0x1F: "Ê",
    0x41: "À", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x5B: "Ã", 0x5C: "Õ",
    0x61: "Â", 0x69: "í", 0x6F: "ó", 0x75: "ú", 0x7B: "ã", 0x7C: "õ", 0x7F: "â",
}  # fmt: skip

#: Characters of the default extension table (form feed, ^ { } \ [ ~ ] | €).
GSM_EXTENSION: frozenset[str] = frozenset(_DEFAULT_SHIFT.values())

#: National language identifiers of TS 23.038 section 6.2.1.2.4 (value of IEI 0x24).
NATIONAL_LANGUAGE_IDS: MappingProxyType[str, int] = MappingProxyType(
    {"turkish": 1, "spanish": 2, "portuguese": 3}
)

#: Per national language, the septet code of every character of its single shift table.
NATIONAL_SHIFT_CODES: MappingProxyType[str, MappingProxyType[int, str]] = MappingProxyType(
    {
        "turkish": MappingProxyType(_TURKISH_SHIFT),
        "spanish": MappingProxyType(_SPANISH_SHIFT),
        "portuguese": MappingProxyType(_PORTUGUESE_SHIFT),
    }
)

#: Per national language, the characters its single shift table adds on top of the default
#: alphabet: these cost two septets when that table is in use.
NATIONAL_SHIFT: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {name: frozenset(codes.values()) - GSM_BASIC for name, codes in NATIONAL_SHIFT_CODES.items()}
)

# --- Smart encoding: GSM-7 look-alikes of characters that would force UCS-2 -----------------
# One row per character of the reference table (Twilio's Smart Encoding list as transcribed
# by the sms-segments-calculator package, 271 rows). Where the sources disagree, the choice
# is what the reader of the SMS should see, and the row says so:
#   DISPUTED  the sources disagree; the value here is our decision:
#             - any kind of space (no-break, en/em, thin, ideographic, TAB) becomes ONE space:
#               two or seven spaces change the layout and cost septets for nothing;
#             - invisible control characters and zero-width joiners are removed: a space
#               would add a visible gap that the sender never saw;
#             - U+201A is a quotation mark (German opening quote), so it becomes ', not ,;
#             - U+2039/U+203A keep their direction (an older copy has them swapped).
#   CHANGED   the single source maps it to something a reader would not expect; we differ.
# Every replacement is default GSM-7 (basic or extension table).
_SMART: dict[str, str] = {
    "\x00": "",  # control; DISPUTED: removed, not a space
    "\x03": "",  # control; DISPUTED: removed, not a space
    "\x04": "",  # control; DISPUTED: removed, not a space
    "\x09": " ",  # control; DISPUTED: 1 space, not 7
    "\x10": "",  # control; DISPUTED: removed, not a space
    "\x11": "",  # control; DISPUTED: removed, not a space
    "\x12": "",  # control; DISPUTED: removed, not a space
    "\x13": "",  # control; DISPUTED: removed, not a space
    "\x14": "",  # control; DISPUTED: removed, not a space
    "\x17": "",  # control; DISPUTED: removed, not a space
    "\x19": "",  # control; DISPUTED: removed, not a space
    "\u0060": "'",  # ` GRAVE ACCENT
    "\x80": "",  # control; DISPUTED: removed, not 2 spaces
    "\x8d": "",  # control; DISPUTED: removed, not 2 spaces
    "\x90": "",  # control; DISPUTED: removed, not 2 spaces
    "\x9b": "",  # control; DISPUTED: removed, not 2 spaces
    "\x9f": "",  # control; DISPUTED: removed, not 2 spaces
    "\u00a0": " ",  # NO-BREAK SPACE; DISPUTED: 1 space, not 2
    "\u00ab": '"',  # « LEFT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u00b4": "'",  # ´ ACUTE ACCENT
    "\u00bb": '"',  # » RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u00bc": "1/4",  # ¼ VULGAR FRACTION ONE QUARTER
    "\u00bd": "1/2",  # ½ VULGAR FRACTION ONE HALF
    "\u00be": "3/4",  # ¾ VULGAR FRACTION THREE QUARTERS
    "\u00f7": "/",  # ÷ DIVISION SIGN
    "\u01c3": "!",  # ǃ LATIN LETTER RETROFLEX CLICK
    "\u0262": "G",  # ɢ LATIN LETTER SMALL CAPITAL G
    "\u026a": "I",  # ɪ LATIN LETTER SMALL CAPITAL I
    "\u0274": "N",  # ɴ LATIN LETTER SMALL CAPITAL N
    "\u0280": "R",  # ʀ LATIN LETTER SMALL CAPITAL R
    "\u028f": "Y",  # ʏ LATIN LETTER SMALL CAPITAL Y
    "\u0299": "B",  # ʙ LATIN LETTER SMALL CAPITAL B
    "\u029c": "H",  # ʜ LATIN LETTER SMALL CAPITAL H
    "\u029f": "L",  # ʟ LATIN LETTER SMALL CAPITAL L
    "\u02b9": "'",  # ʹ MODIFIER LETTER PRIME
    "\u02ba": '"',  # ʺ MODIFIER LETTER DOUBLE PRIME
    "\u02bb": "'",  # ʻ MODIFIER LETTER TURNED COMMA
    "\u02bc": "'",  # ʼ MODIFIER LETTER APOSTROPHE
    "\u02bd": "'",  # ʽ MODIFIER LETTER REVERSED COMMA
    "\u02c6": "^",  # ˆ MODIFIER LETTER CIRCUMFLEX ACCENT
    "\u02c8": "'",  # ˈ MODIFIER LETTER VERTICAL LINE
    "\u02ca": "'",  # ˊ MODIFIER LETTER ACUTE ACCENT
    "\u02cb": "'",  # ˋ MODIFIER LETTER GRAVE ACCENT
    "\u02d0": ":",  # ː MODIFIER LETTER TRIANGULAR COLON
    "\u02d6": "+",  # ˖ MODIFIER LETTER PLUS SIGN
    "\u02dc": "~",  # ˜ SMALL TILDE
    "\u02ee": '"',  # ˮ MODIFIER LETTER DOUBLE APOSTROPHE
    "\u02f7": "~",  # ˷ MODIFIER LETTER LOW TILDE
    "\u02f8": ":",  # ˸ MODIFIER LETTER RAISED COLON
    "\u0302": "^",  # COMBINING CIRCUMFLEX ACCENT
    "\u0303": "~",  # COMBINING TILDE
    "\u0313": "'",  # COMBINING COMMA ABOVE
    "\u0314": "'",  # COMBINING REVERSED COMMA ABOVE
    "\u0326": ",",  # COMBINING COMMA BELOW
    "\u0330": "~",  # COMBINING TILDE BELOW
    "\u0332": "_",  # COMBINING LOW LINE
    "\u0334": "~",  # COMBINING TILDE OVERLAY
    "\u0337": "/",  # COMBINING SHORT SOLIDUS OVERLAY
    "\u0338": "/",  # COMBINING LONG SOLIDUS OVERLAY
    "\u0347": "=",  # COMBINING EQUALS SIGN BELOW
    "\u1d00": "A",  # ᴀ LATIN LETTER SMALL CAPITAL A
    "\u1d04": "C",  # ᴄ LATIN LETTER SMALL CAPITAL C
    "\u1d05": "D",  # ᴅ LATIN LETTER SMALL CAPITAL D
    "\u1d07": "E",  # ᴇ LATIN LETTER SMALL CAPITAL E
    "\u1d0a": "J",  # ᴊ LATIN LETTER SMALL CAPITAL J
    "\u1d0b": "K",  # ᴋ LATIN LETTER SMALL CAPITAL K
    "\u1d0d": "M",  # ᴍ LATIN LETTER SMALL CAPITAL M
    "\u1d0f": "O",  # ᴏ LATIN LETTER SMALL CAPITAL O
    "\u1d18": "P",  # ᴘ LATIN LETTER SMALL CAPITAL P
    "\u1d1b": "T",  # ᴛ LATIN LETTER SMALL CAPITAL T
    "\u1d1c": "U",  # ᴜ LATIN LETTER SMALL CAPITAL U
    "\u1d20": "V",  # ᴠ LATIN LETTER SMALL CAPITAL V
    "\u1d21": "W",  # ᴡ LATIN LETTER SMALL CAPITAL W
    "\u1d22": "Z",  # ᴢ LATIN LETTER SMALL CAPITAL Z
    "\u1dcd": "^",  # COMBINING DOUBLE CIRCUMFLEX ABOVE
    "\u2000": " ",  # EN QUAD; DISPUTED: 1 space, not 2
    "\u2001": " ",  # EM QUAD
    "\u2002": " ",  # EN SPACE; DISPUTED: 1 space, not 2
    "\u2003": " ",  # EM SPACE; DISPUTED: 1 space, not 2
    "\u2004": " ",  # THREE-PER-EM SPACE; DISPUTED: 1 space, not 2
    "\u2005": " ",  # FOUR-PER-EM SPACE; DISPUTED: 1 space, not 2
    "\u2006": " ",  # SIX-PER-EM SPACE; DISPUTED: 1 space, not 2
    "\u2007": " ",  # FIGURE SPACE; DISPUTED: 1 space, not 2
    "\u2008": " ",  # PUNCTUATION SPACE; DISPUTED: 1 space, not 2
    "\u2009": " ",  # THIN SPACE; DISPUTED: 1 space, not 2
    "\u200a": " ",  # HAIR SPACE; DISPUTED: 1 space, not 2
    "\u200b": "",  # ZERO WIDTH SPACE; one source, kept
    "\u200c": "",  # ZERO WIDTH NON-JOINER; one source, kept
    "\u2010": "-",  # ‐ HYPHEN
    "\u2013": "-",  # – EN DASH
    "\u2014": "-",  # — EM DASH
    "\u2015": "-",  # ― HORIZONTAL BAR
    "\u2017": "_",  # ‗ DOUBLE LOW LINE
    "\u2018": "'",  # ‘ LEFT SINGLE QUOTATION MARK
    "\u2019": "'",  # ’ RIGHT SINGLE QUOTATION MARK
    "\u201a": "'",  # ‚ SINGLE LOW-9 QUOTATION MARK; DISPUTED: a quote, not a comma
    "\u201b": "'",  # ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK
    "\u201c": '"',  # “ LEFT DOUBLE QUOTATION MARK
    "\u201d": '"',  # ” RIGHT DOUBLE QUOTATION MARK
    "\u201e": '"',  # „ DOUBLE LOW-9 QUOTATION MARK
    "\u201f": '"',  # ‟ DOUBLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2022": "-",  # • BULLET; one source, kept (Sinch agrees)
    "\u2026": "...",  # … HORIZONTAL ELLIPSIS
    "\u2028": "\n",  # LINE SEPARATOR; CHANGED: source says space
    "\u2029": "\n",  # PARAGRAPH SEPARATOR; CHANGED: source says space
    "\u202f": " ",  # NARROW NO-BREAK SPACE; DISPUTED: 1 space, not 2
    "\u2039": "<",  # ‹ SINGLE LEFT-POINTING ANGLE QUOTATION MARK; DISPUTED: not >
    "\u203a": ">",  # › SINGLE RIGHT-POINTING ANGLE QUOTATION MARK; DISPUTED: not <
    "\u203c": "!!",  # ‼ DOUBLE EXCLAMATION MARK
    "\u2043": "-",  # ⁃ HYPHEN BULLET
    "\u2044": "/",  # ⁄ FRACTION SLASH
    "\u204e": "*",  # ⁎ LOW ASTERISK
    "\u204f": ";",  # ⁏ REVERSED SEMICOLON
    "\u205f": " ",  # MEDIUM MATHEMATICAL SPACE; DISPUTED: 1 space, not 2
    "\u2060": "",  # WORD JOINER; DISPUTED: removed, not a space
    "\u20d2": "|",  # COMBINING LONG VERTICAL LINE OVERLAY
    "\u20d3": "|",  # COMBINING SHORT VERTICAL LINE OVERLAY
    "\u20e5": "\\",  # COMBINING REVERSE SOLIDUS OVERLAY
    "\u2215": "/",  # ∕ DIVISION SLASH
    "\u2217": "*",  # ∗ ASTERISK OPERATOR
    "\u2223": "|",  # ∣ DIVIDES
    "\u223c": "~",  # ∼ TILDE OPERATOR
    "\u229b": "*",  # ⊛ CIRCLED ASTERISK OPERATOR
    "\u239c": "|",  # ⎜ LEFT PARENTHESIS EXTENSION
    "\u239f": "|",  # ⎟ RIGHT PARENTHESIS EXTENSION
    "\u23b8": "|",  # ⎸ LEFT VERTICAL BOX LINE
    "\u23b9": "|",  # ⎹ RIGHT VERTICAL BOX LINE
    "\u23bc": "-",  # ⎼ HORIZONTAL SCAN LINE-7
    "\u23bd": "-",  # ⎽ HORIZONTAL SCAN LINE-9
    "\u23d0": "|",  # ⏐ VERTICAL LINE EXTENSION
    "\u2722": "*",  # ✢ FOUR TEARDROP-SPOKED ASTERISK
    "\u2723": "*",  # ✣ FOUR BALLOON-SPOKED ASTERISK
    "\u2724": "*",  # ✤ HEAVY FOUR BALLOON-SPOKED ASTERISK
    "\u2725": "*",  # ✥ FOUR CLUB-SPOKED ASTERISK
    "\u2731": "*",  # ✱ HEAVY ASTERISK
    "\u2732": "*",  # ✲ OPEN CENTRE ASTERISK
    "\u2733": "*",  # ✳ EIGHT SPOKED ASTERISK
    "\u273a": "*",  # ✺ SIXTEEN POINTED ASTERISK
    "\u273b": "*",  # ✻ TEARDROP-SPOKED ASTERISK
    "\u273c": "*",  # ✼ OPEN CENTRE TEARDROP-SPOKED ASTERISK
    "\u273d": "*",  # ✽ HEAVY TEARDROP-SPOKED ASTERISK
    "\u2743": "*",  # ❃ HEAVY TEARDROP-SPOKED PINWHEEL ASTERISK
    "\u2749": "*",  # ❉ BALLOON-SPOKED ASTERISK
    "\u274a": "*",  # ❊ EIGHT TEARDROP-SPOKED PROPELLER ASTERISK
    "\u274b": "*",  # ❋ HEAVY EIGHT TEARDROP-SPOKED PROPELLER ASTERISK
    "\u275b": "'",  # ❛ HEAVY SINGLE TURNED COMMA QUOTATION MARK ORNAMENT
    "\u275c": "'",  # ❜ HEAVY SINGLE COMMA QUOTATION MARK ORNAMENT
    "\u275d": '"',  # ❝ HEAVY DOUBLE TURNED COMMA QUOTATION MARK ORNAMENT
    "\u275e": '"',  # ❞ HEAVY DOUBLE COMMA QUOTATION MARK ORNAMENT
    "\u2768": "(",  # ❨ MEDIUM LEFT PARENTHESIS ORNAMENT
    "\u2769": ")",  # ❩ MEDIUM RIGHT PARENTHESIS ORNAMENT
    "\u276a": "(",  # ❪ MEDIUM FLATTENED LEFT PARENTHESIS ORNAMENT
    "\u276b": ")",  # ❫ MEDIUM FLATTENED RIGHT PARENTHESIS ORNAMENT
    "\u2774": "{",  # ❴ MEDIUM LEFT CURLY BRACKET ORNAMENT
    "\u2775": "}",  # ❵ MEDIUM RIGHT CURLY BRACKET ORNAMENT
    "\u27ee": "(",  # ⟮ MATHEMATICAL LEFT FLATTENED PARENTHESIS
    "\u27ef": ")",  # ⟯ MATHEMATICAL RIGHT FLATTENED PARENTHESIS
    "\u2982": ":",  # ⦂ Z NOTATION TYPE COLON
    "\u2985": "(",  # ⦅ LEFT WHITE PARENTHESIS
    "\u2986": ")",  # ⦆ RIGHT WHITE PARENTHESIS
    "\u29c6": "*",  # ⧆ SQUARED ASTERISK
    "\u29f5": "\\",  # ⧵ REVERSE SOLIDUS OPERATOR
    "\u29f8": "/",  # ⧸ BIG SOLIDUS
    "\u29f9": "\\",  # ⧹ BIG REVERSE SOLIDUS
    "\u3000": " ",  # IDEOGRAPHIC SPACE; DISPUTED: 1 space, not 2
    "\u3001": ",",  # 、 IDEOGRAPHIC COMMA; one source, kept
    "\u3002": ".",  # 。 IDEOGRAPHIC FULL STOP
    "\u301d": '"',  # 〝 REVERSED DOUBLE PRIME QUOTATION MARK
    "\u301e": '"',  # 〞 DOUBLE PRIME QUOTATION MARK
    "\ua730": "F",  # ꜰ LATIN LETTER SMALL CAPITAL F
    "\ua731": "S",  # ꜱ LATIN LETTER SMALL CAPITAL S
    "\ua789": ":",  # ꞉ MODIFIER LETTER COLON
    "\ua78a": "=",  # ꞊ MODIFIER LETTER SHORT EQUALS SIGN
    "\ufe10": ",",  # ︐ PRESENTATION FORM FOR VERTICAL COMMA; CHANGED: source says '
    "\ufe11": ",",  # ︑ PRESENTATION FORM FOR VERTICAL IDEOGRAPHIC COMMA; CHANGED: source says '
    "\ufe13": ":",  # ︓ PRESENTATION FORM FOR VERTICAL COLON
    "\ufe14": ";",  # ︔ PRESENTATION FORM FOR VERTICAL SEMICOLON
    "\ufe15": "!",  # ︕ PRESENTATION FORM FOR VERTICAL EXCLAMATION MARK
    "\ufe16": "?",  # ︖ PRESENTATION FORM FOR VERTICAL QUESTION MARK
    "\ufe50": ",",  # ﹐ SMALL COMMA
    "\ufe51": ",",  # ﹑ SMALL IDEOGRAPHIC COMMA
    "\ufe52": ".",  # ﹒ SMALL FULL STOP
    "\ufe54": ";",  # ﹔ SMALL SEMICOLON
    "\ufe56": "?",  # ﹖ SMALL QUESTION MARK
    "\ufe57": "!",  # ﹗ SMALL EXCLAMATION MARK
    "\ufe59": "(",  # ﹙ SMALL LEFT PARENTHESIS
    "\ufe5a": ")",  # ﹚ SMALL RIGHT PARENTHESIS
    "\ufe5b": "{",  # ﹛ SMALL LEFT CURLY BRACKET
    "\ufe5c": "}",  # ﹜ SMALL RIGHT CURLY BRACKET
    "\ufe5f": "#",  # ﹟ SMALL NUMBER SIGN
    "\ufe60": "&",  # ﹠ SMALL AMPERSAND
    "\ufe61": "*",  # ﹡ SMALL ASTERISK
    "\ufe62": "+",  # ﹢ SMALL PLUS SIGN
    "\ufe63": "-",  # ﹣ SMALL HYPHEN-MINUS
    "\ufe64": "<",  # ﹤ SMALL LESS-THAN SIGN
    "\ufe65": ">",  # ﹥ SMALL GREATER-THAN SIGN
    "\ufe66": "=",  # ﹦ SMALL EQUALS SIGN
    "\ufe68": "\\",  # ﹨ SMALL REVERSE SOLIDUS
    "\ufe69": "$",  # ﹩ SMALL DOLLAR SIGN
    "\ufe6a": "%",  # ﹪ SMALL PERCENT SIGN
    "\ufe6b": "@",  # ﹫ SMALL COMMERCIAL AT
    "\ufeff": "",  # ZERO WIDTH NO-BREAK SPACE; one source, kept
    "\uff01": "!",  # ！ FULLWIDTH EXCLAMATION MARK
    "\uff02": '"',  # ＂ FULLWIDTH QUOTATION MARK
    "\uff03": "#",  # ＃ FULLWIDTH NUMBER SIGN
    "\uff04": "$",  # ＄ FULLWIDTH DOLLAR SIGN
    "\uff05": "%",  # ％ FULLWIDTH PERCENT SIGN
    "\uff06": "&",  # ＆ FULLWIDTH AMPERSAND
    "\uff07": "'",  # ＇ FULLWIDTH APOSTROPHE
    "\uff08": "(",  # （ FULLWIDTH LEFT PARENTHESIS
    "\uff09": ")",  # ） FULLWIDTH RIGHT PARENTHESIS
    "\uff0a": "*",  # ＊ FULLWIDTH ASTERISK
    "\uff0b": "+",  # ＋ FULLWIDTH PLUS SIGN
    "\uff0c": ",",  # ， FULLWIDTH COMMA
    "\uff0d": "-",  # － FULLWIDTH HYPHEN-MINUS
    "\uff0e": ".",  # ． FULLWIDTH FULL STOP
    "\uff0f": "/",  # ／ FULLWIDTH SOLIDUS
    "\uff10": "0",  # ０ FULLWIDTH DIGIT ZERO
    "\uff11": "1",  # １ FULLWIDTH DIGIT ONE
    "\uff12": "2",  # ２ FULLWIDTH DIGIT TWO
    "\uff13": "3",  # ３ FULLWIDTH DIGIT THREE
    "\uff14": "4",  # ４ FULLWIDTH DIGIT FOUR
    "\uff15": "5",  # ５ FULLWIDTH DIGIT FIVE
    "\uff16": "6",  # ６ FULLWIDTH DIGIT SIX
    "\uff17": "7",  # ７ FULLWIDTH DIGIT SEVEN
    "\uff18": "8",  # ８ FULLWIDTH DIGIT EIGHT
    "\uff19": "9",  # ９ FULLWIDTH DIGIT NINE
    "\uff1a": ":",  # ： FULLWIDTH COLON
    "\uff1b": ";",  # ； FULLWIDTH SEMICOLON
    "\uff1c": "<",  # ＜ FULLWIDTH LESS-THAN SIGN
    "\uff1d": "=",  # ＝ FULLWIDTH EQUALS SIGN
    "\uff1e": ">",  # ＞ FULLWIDTH GREATER-THAN SIGN
    "\uff1f": "?",  # ？ FULLWIDTH QUESTION MARK
    "\uff20": "@",  # ＠ FULLWIDTH COMMERCIAL AT
    "\uff21": "A",  # Ａ FULLWIDTH LATIN CAPITAL LETTER A
    "\uff22": "B",  # Ｂ FULLWIDTH LATIN CAPITAL LETTER B
    "\uff23": "C",  # Ｃ FULLWIDTH LATIN CAPITAL LETTER C
    "\uff24": "D",  # Ｄ FULLWIDTH LATIN CAPITAL LETTER D
    "\uff25": "E",  # Ｅ FULLWIDTH LATIN CAPITAL LETTER E
    "\uff26": "F",  # Ｆ FULLWIDTH LATIN CAPITAL LETTER F
    "\uff27": "G",  # Ｇ FULLWIDTH LATIN CAPITAL LETTER G
    "\uff28": "H",  # Ｈ FULLWIDTH LATIN CAPITAL LETTER H
    "\uff29": "I",  # Ｉ FULLWIDTH LATIN CAPITAL LETTER I
    "\uff2a": "J",  # Ｊ FULLWIDTH LATIN CAPITAL LETTER J
    "\uff2b": "K",  # Ｋ FULLWIDTH LATIN CAPITAL LETTER K
    "\uff2c": "L",  # Ｌ FULLWIDTH LATIN CAPITAL LETTER L
    "\uff2d": "M",  # Ｍ FULLWIDTH LATIN CAPITAL LETTER M
    "\uff2e": "N",  # Ｎ FULLWIDTH LATIN CAPITAL LETTER N
    "\uff2f": "O",  # Ｏ FULLWIDTH LATIN CAPITAL LETTER O
    "\uff30": "P",  # Ｐ FULLWIDTH LATIN CAPITAL LETTER P
    "\uff31": "Q",  # Ｑ FULLWIDTH LATIN CAPITAL LETTER Q
    "\uff32": "R",  # Ｒ FULLWIDTH LATIN CAPITAL LETTER R
    "\uff33": "S",  # Ｓ FULLWIDTH LATIN CAPITAL LETTER S
    "\uff34": "T",  # Ｔ FULLWIDTH LATIN CAPITAL LETTER T
    "\uff35": "U",  # Ｕ FULLWIDTH LATIN CAPITAL LETTER U
    "\uff36": "V",  # Ｖ FULLWIDTH LATIN CAPITAL LETTER V
    "\uff37": "W",  # Ｗ FULLWIDTH LATIN CAPITAL LETTER W
    "\uff38": "X",  # Ｘ FULLWIDTH LATIN CAPITAL LETTER X
    "\uff39": "Y",  # Ｙ FULLWIDTH LATIN CAPITAL LETTER Y
    "\uff3a": "Z",  # Ｚ FULLWIDTH LATIN CAPITAL LETTER Z
    "\uff3b": "[",  # ［ FULLWIDTH LEFT SQUARE BRACKET
    "\uff3c": "\\",  # ＼ FULLWIDTH REVERSE SOLIDUS
    "\uff3d": "]",  # ］ FULLWIDTH RIGHT SQUARE BRACKET
    "\uff3e": "^",  # ＾ FULLWIDTH CIRCUMFLEX ACCENT
    "\uff3f": "_",  # ＿ FULLWIDTH LOW LINE
    "\uff5b": "{",  # ｛ FULLWIDTH LEFT CURLY BRACKET
    "\uff5c": "|",  # ｜ FULLWIDTH VERTICAL LINE
    "\uff5d": "}",  # ｝ FULLWIDTH RIGHT CURLY BRACKET
    "\uff5e": "~",  # ～ FULLWIDTH TILDE
    "\uff61": ".",  # ｡ HALFWIDTH IDEOGRAPHIC FULL STOP
    "\uff64": ",",  # ､ HALFWIDTH IDEOGRAPHIC COMMA
}

#: {character: GSM-7 replacement}; an empty replacement removes the character.
SMART_REPLACEMENTS: MappingProxyType[str, str] = MappingProxyType(_SMART)
