"""Context rules: the reading of a polyphonic character from its neighbours, where the meter cannot
decide (朝 zhāo and cháo are both 平; 景 jǐng and yǐng both 仄) or the text is not a regular poem.

Each rule names the character, what must come just before it and just after it (regular
expressions on the same line), and the reading. The first rule that matches wins, so narrow rules
come before broad ones. Every rule is exercised by tests/test_readings.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

NUMERALS = "一二两三四五六七八九十百千万数几半"


@dataclass(frozen=True)
class Rule:
    char: str
    before: str           # regex that must end just before the character ("" = anything)
    after: str            # regex that must start just after it ("" = anything)
    reading: str
    why: str
    _before: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _after: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_before", re.compile(f"(?:{self.before})$"))
        object.__setattr__(self, "_after", re.compile(self.after))

    def matches(self, line: str, i: int) -> bool:
        """Whether the rule applies to line[i]."""
        return (line[i] == self.char and bool(self._before.search(line[:i]))
                and bool(self._after.match(line, i + 1)))


RULES: tuple[Rule, ...] = (
    # 朝: the court, a dynasty, "towards" — otherwise the morning.
    Rule("朝", "", "[廷天中回罢衣服臣宗代野堂班参拜圣向]", "cháo", "朝廷, 朝天, 朝回: the court"),
    Rule("朝", "[六南北前本当皇王圣入还上早退来历隋唐两三]", "", "cháo", "六朝, 入朝, 早朝: a dynasty, the court"),
    Rule("朝", "", "[辞发来雨暮夕晖霞露阳日饮餐食朝]", "zhāo", "朝辞, 朝发, 朝雨: in the morning"),
    Rule("朝", "[今明一终崇元清连诘朝]", "", "zhāo", "今朝, 明朝, 一朝: a morning, a day"),
    # 行: a row after a number or in a file of geese; otherwise to go.
    Rule("行", "", "[李人客路役旅]", "xíng", "行李, 行人: to travel (数行李 is luggage, not rows)"),
    Rule("行", f"[{NUMERALS}雁成分作满]", "", "háng", "一行白鹭, 两行泪, 雁行: a row, a line"),
    Rule("行", "", "[列伍]", "háng", "行列: a row"),
    # 重: again / layers, against heavy.
    Rule("重", "", "[阳九重来游到见逢回寻开上过入叠门楼峦山围城霄泉关相凭理看听论问拾整题归返修经温岩衾檐阴帘幕渊波嶂峰]",
         "chóng", "重阳, 重来, 重门: again, layered"),
    Rule("重", f"[{NUMERALS}九]", "", "chóng", "万重山, 九重: layers"),
    Rule("重", "[露花雪霜意情珍贵轻厚深沉负郑尊]", "", "zhòng", "露重, 花重, 珍重: heavy, weighty"),
    # 长: grow, elder.
    Rule("长", "[生成增滋消助兄家师首酋官尊]", "", "zhǎng", "生长, 消长, 兄长: to grow, an elder"),
    Rule("长", "", "[大者老幼官子成]", "zhǎng", "长大, 长者, 长老: grown, elder"),
    Rule("长", "", "精神", "zhǎng", "长精神: to raise the spirits"),
    # 为: for (wèi) before a person or a question word; to be / to act otherwise.
    Rule("为", "", "[谁君我汝尔伊他渠卿何国民子妾有探公己报问底]", "wèi", "为谁, 为君, 为我: for"),
    Rule("为", "[因只皆专]", "", "wèi", "因为, 只为: because of"),
    # 笼: a cage as a noun, to envelop as a verb.
    Rule("笼", "[樊鸟金灯熏竹入出在玉雕牢]", "", "lóng", "樊笼, 金笼: a cage"),
    Rule("笼", "", "[中里鸟禽鹦鹤]", "lóng", "笼中, 笼鸟: a cage"),
    # 景: the sun's light (= 影) in 返景, 倒景.
    Rule("景", "[返倒]", "", "yǐng", "返景, 倒景: light, reflection (= 影)"),
    # 将: a general; 将进酒's "please".
    Rule("将", "", "进酒", "qiāng", "将进酒: please"),
    Rule("将", "[飞名大良猛上主老守败武边骁神副宿战诸]", "", "jiàng", "飞将, 名将: a general"),
    Rule("将", "", "[士帅领校兵令佐]", "jiàng", "将士, 将帅: a general"),
    # 似: only in 似的.
    Rule("似", "", "的", "shì", "似的: as if"),
    # 应: should (yīng); to answer (yìng).
    Rule("应", "[相呼响感供答酬照对]", "", "yìng", "相应, 呼应: to answer"),
    Rule("应", "", "[声门答和接对制试举付人]", "yìng", "应声, 应门: to answer"),
    # 教: to let or make (classical 平 jiāo, modern jiào: textbooks differ); to teach.
    Rule("教", "", "[授学化导育诲]", "jiào", "教授, 教化: to teach"),
    Rule("教", "", "[吹弹歌舞书琴]", "jiāo", "教吹箫: to teach (someone) to"),
    Rule("教", "[不莫休肯谁偏却且忍好须应要争遣故犹那宁悔]", "", "jiào/jiāo", "不教, 莫教: to let"),
    # 更: a night watch, to change (gēng); more (gèng).
    Rule("更", f"[{NUMERALS}初残深严]", "", "gēng", "五更, 残更: a watch of the night"),
    Rule("更", "", "[深漏鼓阑残衣筹夫替迭换始新]", "gēng", "更深, 更漏, 更衣: a watch, to change"),
    # 相: a minister.
    Rule("相", "[丞宰卿将首真拜]", "", "xiàng", "丞相, 宰相: a minister"),
    Rule("相", "", "[国府公位]", "xiàng", "相国, 相府: a minister"),
    # 燕: the northern land (Yan); otherwise the swallow.
    Rule("燕", "", "[山然赵京台歌地市国]", "yān", "燕山, 燕然: Yan, the northern land"),
    Rule("燕", "[幽入北]", "", "yān", "幽燕: the northern land"),
    # 胜: to bear (不胜: old shēng, today shèng).
    Rule("胜", "[不难那可讵]", "", "shèng/shēng", "不胜: cannot bear"),
    # 骑: a horseman (old jì, today qí).
    Rule("骑", f"[{NUMERALS}铁胡轻单精车骠坐骄边从飞戎游万]", "", "qí/jì", "一骑, 铁骑: a horseman"),
    # 还: still / yet before 似, 是, 如 (pypinyin knows 还是; verse often 还似).
    Rule("还", "", "[似如是]", "hái", "还似, 还如: still"),
    # 尽: 尽管-like "as far as possible" comes from pypinyin's phrases; verse means "to the end".
    # 数: to count (shǔ) after these; several / a number (shù) otherwise.
    Rule("数", "[细屈难谁可堪历遍闲暗偷指]", "", "shǔ", "细数, 屈指数: to count"),
    Rule("数", "[频]", "", "shuò", "频数: frequently"),
    # 少: young.
    Rule("少", "", "[年小妇女壮]", "shào", "少年, 少小: young"),
    Rule("少", "[年老阔恶]", "", "shào", "年少, 老少: young"),
    # 好: to like.
    Rule("好", "", "[奇学古客色道读事胜酒]", "hào", "好奇, 好学: to be fond of"),
    Rule("好", "[爱嗜所同雅偏喜惟唯颇性素]", "", "hào", "爱好, 惟好静: to be fond of"),
    # 处: a place (chù) after these; to dwell / to handle (chǔ).
    Rule("处", "[何无深高是此别到远尽随去来处某住]", "", "chù", "何处, 无处: a place"),
    Rule("处", "", "[世事士置理分身女]", "chǔ", "处世, 处士: to dwell, to handle"),
    Rule("处", "[相独共居出杂]", "", "chǔ", "相处, 独处: to be with, to dwell"),
    # 发: hair.
    Rule("发", "[白华鬓短散头被青素霜黑毛乱结理须皓]", "", "fà", "白发, 华发: hair"),
    # 着: to wear, to apply (zhuó) in verse; 睡不着 zháo.
    Rule("着", "", "[花意衣色力手眼墨鞭处地叶枝]", "zhuó", "着花, 着意: to put forth, to apply"),
    Rule("着", "[睡不找]", "", "zháo", "睡不着: to succeed in"),
    # 曲: a tune (qǔ) after these; a bend (qū) otherwise, as in 江曲, 水曲, 曲陌.
    Rule("曲", "九", "", "qū", "九曲黄河: winding"),
    Rule("曲", "", "[径折江水池岸栏槛巷房屏沼尺肱阑港直院坊阜项]", "qū", "曲径, 曲江: bent, winding"),
    Rule("曲", "[弯委歪盘]", "", "qū", "弯曲: bent"),
    Rule("曲", "", "[终中罢调声子词谱牌]", "qǔ", "曲终, 曲中: a tune"),
    Rule("曲", f"[{NUMERALS}新古歌清妙羌琴小度奏唱听此名舞艳雅俗心关笛箫凉怨词弦声商筝乐]", "", "qǔ",
         "一曲, 新曲, 阳关曲: a tune"),
    # 觉: a sleep.
    Rule("觉", "[一睡午好大]", "", "jiào", "一觉, 睡觉: a sleep"),
    # 载: a year after a number.
    Rule("载", f"[{NUMERALS}]", "", "zǎi", "千载: years"),
    Rule("载", "[记登刊转]", "", "zǎi", "记载: to record"),
    # 塞: to block.
    Rule("塞", "[闭阻堵填茅壅]", "", "sè", "闭塞: blocked"),
    # 宿: a constellation.
    Rule("宿", "[星列辰]", "", "xiù", "星宿: a constellation"),
    # 降: to surrender.
    Rule("降", "[投受请来迎纳招归乞]", "", "xiáng", "投降, 受降: to surrender"),
    Rule("降", "", "[服王书旗虏将]", "xiáng", "降服, 降王: to surrender"),
    # 冠: first; to put on a cap.
    Rule("冠", "[弱]", "", "guàn", "弱冠: twenty years old"),
    Rule("冠", "", "[军绝]", "guàn", "冠军, 冠绝: first"),
    # 论: the Analects; 不论 lùn.
    Rule("论", "", "语", "lún", "论语: the Analects"),
    # 量: to measure, to weigh in the mind.
    Rule("量", "[思商估丈打测端称较]", "", "liáng", "思量, 商量: to weigh, to consider"),
    # 分: a share, a portion.
    Rule("分", "", "[外内]", "fèn", "分外: especially"),
    Rule("分", "[本缘名情过职福天非]", "", "fèn", "缘分, 名分: a share, one's lot"),
    # 乘: a chariot.
    Rule("乘", f"[{NUMERALS}史]", "", "shèng", "千乘, 万乘: chariots"),
    Rule("乘", "", "[舟船风鹤龙马车槎兴月云鸾凤桴醉流时势凉虚胜]", "chéng", "乘舟, 乘风: to ride"),
    # 禁: to bear (不禁); forbidden, the palace.
    Rule("禁", "[不]", "", "jīn", "不禁: cannot help"),
    Rule("禁", "", "[得受住]", "jīn", "禁得: to bear"),
    # 难: a calamity.
    Rule("难", "[国患避落遭死危灾急蒙赴殉]", "", "nàn", "国难, 患难: a calamity"),
    # 当: proper; to regard as.
    Rule("当", "[恰妥适上典停]", "", "dàng", "恰当, 妥当: proper"),
    Rule("当", "", "[铺真]", "dàng", "当铺: a pawnshop"),
    # 调: to tune, to tease (tiáo); a tune (diào).
    Rule("调", "", "[和弄笑琴理匀瑟筝鼎羹]", "tiáo", "调和, 调笑: to tune, to tease"),
    Rule("调", "[协烹]", "", "tiáo", "协调: to harmonise"),
    # 传: a biography, a record.
    Rule("传", "[自列经外正别]", "", "zhuàn", "列传, 经传: a record"),
    Rule("传", "", "[记舍]", "zhuàn", "传记: a biography"),
    # 兴: mood, zest.
    Rule("兴", "[高乘逸诗酒雅余尽清幽豪遣游归即助发感秋]", "", "xìng", "乘兴, 逸兴: zest, mood"),
    Rule("兴", "", "[致趣味会来尽阑酣]", "xìng", "兴致, 兴来: zest, the mood"),
    # 强: to force oneself.
    Rule("强", "[勉]", "", "qiǎng", "勉强: reluctantly"),
    Rule("强", "", "[颜欲饮笑说登自作求起扶持留]", "qiǎng", "强颜, 强欲: to force oneself"),
    # 见: to appear (= 现).
    Rule("见", "[低]", "", "xiàn", "风吹草低见牛羊: to appear (= 现)"),
    # 正: the first month.
    Rule("正", "", "月", "zhēng", "正月: the first month"),
    # 扁: 扁舟, a small boat.
    Rule("扁", "", "舟", "piān", "扁舟: a small boat"),
    # 参: 参差; the star Shen.
    Rule("参", "", "差", "cēn", "参差: uneven"),
    Rule("参", "", "[商辰宿]", "shēn", "参商: the stars Shen and Shang"),
    Rule("参", "[人商]", "", "shēn", "人参, 参商"),
    # 差: 参差, 差池.
    Rule("差", "参", "", "cī", "参差: uneven"),
    Rule("差", "", "池", "cī", "差池: uneven"),
    # 殷: dark red.
    Rule("殷", "", "红", "yān", "殷红: dark red"),
    # 倒: upside down, a reflection.
    Rule("倒", "", "[影挂映流行景悬]", "dào", "倒影, 倒挂: upside down"),
    # 种: to plant.
    Rule("种", "", "[豆菊花树田桃柳竹瓜谷桑麻稻菜松地]", "zhòng", "种豆, 种菊: to plant"),
    Rule("种", "[耕栽播亲手自]", "", "zhòng", "耕种, 栽种: to plant"),
    # 弹: a pellet.
    Rule("弹", "", "[丸弓]", "dàn", "弹丸: a pellet"),
    Rule("弹", "[子金飞挟]", "", "dàn", "金弹: a pellet"),
    # 卷: a scroll, a volume.
    Rule("卷", f"[{NUMERALS}书经画手开诗案]", "", "juàn", "万卷, 书卷: a volume"),
    Rule("卷", "", "轴", "juàn", "卷轴: a scroll"),
    # 藏: a treasury, a canon.
    Rule("藏", "[宝西道三经]", "", "zàng", "宝藏, 道藏: a treasury, a canon"),
    # 都: a capital, a protector-general.
    Rule("都", "", "[城门护尉会邑市下督]", "dū", "都城, 都护: a capital"),
    Rule("都", "[京帝国成旧东西建首故上古陪神大仙迁两皇]", "", "dū", "京都, 帝都: a capital"),
    # 系: to tie.
    Rule("系", "", "[马船舟缆绳颈住得着]", "jì", "系马, 系舟: to tie"),
    # 会: 会稽.
    Rule("会", "", "稽", "kuài", "会稽: Kuaiji"),
    # 纶: 纶巾, a silk scarf.
    Rule("纶", "", "巾", "guān", "纶巾: a silk scarf"),
    # 父: an old man (渔父).
    Rule("父", "[渔田樵野尚]", "", "fǔ", "渔父: an old fisherman"),
    # 汗: 可汗, a khan.
    Rule("汗", "可", "", "hán", "可汗: a khan"),
    # 华: Mount Hua.
    Rule("华", "", "[山岳阴]", "huà", "华山: Mount Hua"),
    # 了: the particle after 嫁.
    Rule("了", "[嫁]", "", "le", "初嫁了: the particle"),
    # 荷: to carry on the shoulder.
    Rule("荷", "", "[锄戈担戟笠蓑]", "hè", "荷锄: to carry"),
    # 饮: to water (a horse).
    Rule("饮", "", "[马牛君之汝]", "yìn", "饮马, 饮君酒: to water, to give to drink"),
    # 观: a Taoist temple.
    Rule("观", "[道寺宫玄楼台]", "", "guàn", "道观: a Taoist temple"),
    # 省: to reflect, to recognise.
    Rule("省", "[反自内三深猛发不谁未曾细常难]", "", "xǐng", "反省, 谁省: to reflect, to heed"),
    Rule("省", "", "[识亲悟]", "xǐng", "省识: to recognise"),
    # 乐: music.
    Rule("乐", "", "[府曲器章工声舞奏律师坊伎人]", "yuè", "乐府, 乐曲: music"),
    Rule("乐", "[音丝鼓奏作礼仙声笙弦管伎歌雅燕鼓仙]", "", "yuè", "音乐, 丝乐: music"),
    # 几: a small table; almost.
    Rule("几", "[案茶窗净]", "", "jī", "案几: a small table"),
    Rule("几", "", "[乎案]", "jī", "几乎: almost"),
    # 便: 便便, 便宜.
    Rule("便", "", "[便宜娟]", "pián", "便便: fat"),
    # 贾: a merchant.
    Rule("贾", "[商估行]", "", "gǔ", "商贾: a merchant"),
    Rule("贾", "", "[客人胡舶船]", "gǔ", "贾客: a merchant"),
    # 度: to guess.
    Rule("度", "[揣忖]", "", "duó", "揣度: to guess"),
    # 说: to persuade; pleased (= 悦).
    Rule("说", "[游]", "", "shuì", "游说: to canvass"),
    Rule("说", "[不亦]", "乎", "yuè", "不亦说乎: pleased (= 悦)"),
    # 泊: a lake, a pool (of blood); to moor otherwise.
    Rule("泊", "[湖血梁]", "", "pō", "湖泊: a lake"),
    # 舍: to give up.
    Rule("舍", "[不难割施取弃]", "", "shě", "不舍: to give up"),
    Rule("舍", "", "[弃身得]", "shě", "舍弃: to give up"),
    # 夫: the particle opening a judgement (岱宗夫如何).
    Rule("夫", "", "如何", "fú", "夫如何: well then"),
    # 裳: 衣裳 in verse reads cháng; modern speech says shang.
    Rule("裳", "[衣霓罗]", "", "cháng", "衣裳: clothes (in verse)"),
    # 那: how, where (= 哪) before these.
    Rule("那", "", "[得知堪能可肯]", "nǎ", "那得, 那知: how (= 哪)"),
    # 单: 单于, the Xiongnu ruler.
    Rule("单", "", "于", "chán", "单于: the Xiongnu ruler"),
    # 盛: to fill (a bowl).
    Rule("盛", "", "[来满酒饭水]", "chéng", "盛来: to fill"),
    # 大: 大夫.
    Rule("大", "", "夫", "dài", "大夫: an official"),
    # 曾: a great-grandchild.
    Rule("曾", "[何未不几谁也犹已]", "", "céng", "何曾, 未曾: ever"),
    Rule("曾", "", "[孙祖]", "zēng", "曾孙: great-grandchild"),
)


@lru_cache(maxsize=1)
def rules_by_char() -> dict[str, tuple[Rule, ...]]:
    """RULES grouped by character, in order."""
    out: dict[str, list[Rule]] = {}
    for rule in RULES:
        out.setdefault(rule.char, []).append(rule)
    return {c: tuple(rs) for c, rs in out.items()}


def context_reading(line: str, i: int) -> str | None:
    """The reading the first matching rule gives line[i], or None."""
    for rule in rules_by_char().get(line[i], ()):
        if rule.matches(line, i):
            return rule.reading
    return None
