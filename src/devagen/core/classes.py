"""The 46 official DHCD classes and the Devanagari glyph each one stands for."""

# Official folder names, in the dataset's own order (consonants 1..36, then digits 0..9).
CLASS_GLYPHS: dict[str, str] = {
    "character_1_ka": "क", "character_2_kha": "ख", "character_3_ga": "ग",
    "character_4_gha": "घ", "character_5_kna": "ङ", "character_6_cha": "च",
    "character_7_chha": "छ", "character_8_ja": "ज", "character_9_jha": "झ",
    "character_10_yna": "ञ", "character_11_taamatar": "ट", "character_12_thaa": "ठ",
    "character_13_daa": "ड", "character_14_dhaa": "ढ", "character_15_adna": "ण",
    "character_16_tabala": "त", "character_17_tha": "थ", "character_18_da": "द",
    "character_19_dha": "ध", "character_20_na": "न", "character_21_pa": "प",
    "character_22_pha": "फ", "character_23_ba": "ब", "character_24_bha": "भ",
    "character_25_ma": "म", "character_26_yaw": "य", "character_27_ra": "र",
    "character_28_la": "ल", "character_29_waw": "व", "character_30_motosaw": "श",
    "character_31_petchiryakha": "ष", "character_32_patalosaw": "स",
    "character_33_ha": "ह",
    # The three conjuncts are several code points each (consonant + virama + consonant).
    "character_34_chhya": "क्ष", "character_35_tra": "त्र", "character_36_gya": "ज्ञ",
    **{f"digit_{d}": chr(0x0966 + d) for d in range(10)},  # ० … ९
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASS_GLYPHS)
NUM_CLASSES = len(CLASS_NAMES)  # 46
GLYPH_TO_INDEX: dict[str, int] = {g: i for i, g in enumerate(CLASS_GLYPHS.values())}


def glyphs() -> list[str]:
    """Glyph of every class, in class-index order."""
    return list(CLASS_GLYPHS.values())
