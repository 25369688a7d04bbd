"""A small lexicon of word classes that 对仗 pairs within: numbers, colours, directions, seasons …

Hand-made for evaluating couplets (benchmarks/couplet.py): 天 against 地 and 风 against 雨 are
one class each (天象, 地理), 三 against 万 one class (数). One class per character; a character
that could sit in two (乌 crow or black, 墨 ink or black) is put where couplets most often use it.
numpy-free and TensorFlow-free.
"""
from __future__ import annotations

CLASSES: dict[str, str] = {
    "数": "一二三四五六七八九十百千万亿两双半几孤独单再廿卅",
    "色": "红赤朱丹绛紫黄青绿碧翠苍白素皓黑乌玄墨金银彩蓝黛缃绯",
    "方位": "东西南北中上下左右前后内外里边旁间",
    "时令": "春夏秋冬晨朝暮夕晓昼夜宵年岁昔今古时季午晚旦腊",
    "天象": "天日月星辰云雨雪霜露风雷电虹霞烟雾霁晴阴霭霄空雯",
    "地理": "山川河江湖海溪泉水波浪涛峰岭岩石峡谷原野田洲岸滩沙尘路径洞关城村乡郊陌",
    "草木": "花草木树林松柏竹梅兰菊莲荷柳杨桃李杏桂枫芦苇萍苔藤叶枝根果稻麦禾蕊芽桑麻蓬",
    "鸟兽": "鸟鸿雁燕莺鹊鹤鸥鹭鸦凤龙虎马牛羊犬鱼蝶蜂蝉虫鹿猿雀鸡鹰蛙萤蚕",
    "人伦": "人君臣父母兄弟子孙儿女客僧翁叟童士民王侯将相友朋宾主妻夫师仙",
    "身体": "身心头首眉眼目耳口手足发鬓骨颜面齿唇腰肩",
    "居处": "楼台亭阁殿堂宫门窗帘屋舍庐院墙庭阶廊轩榭寺庙",
    "器物": "舟船帆车琴瑟笛箫剑刀弓书笔纸卷酒杯壶茶灯烛镜钟鼓衣裳巾袖冠席枕",
}

CLASS_OF: dict[str, str] = {c: name for name, chars in CLASSES.items() for c in chars}


def class_of(char: str) -> str | None:
    """The class of char, or None when the lexicon does not list it."""
    return CLASS_OF.get(char)


def class_agreement(first: str, second: str) -> tuple[int, int]:
    """(positions where first's character has a class, of which second's has the same class)."""
    listed = same = 0
    for a, b in zip(first, second):
        ca = CLASS_OF.get(a)
        if ca is None:
            continue
        listed += 1
        same += CLASS_OF.get(b) == ca
    return listed, same
