"""Every user-facing sentence in Chinese and English, and how a user's language is chosen.

Texts are plain strings with {placeholders}; callers escape values for HTML before formatting.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from protocol.jobs import (E_DEAD_LETTER, E_IMPOSSIBLE, E_INTERNAL, E_INVALID, E_NO_MODEL, E_UNKNOWN_CHARS,
                        E_UNKNOWN_STYLE, E_COUPLET_LENGTH, E_NO_CI_MODEL, E_NO_COUPLET_MODEL)

if TYPE_CHECKING:
    from telegram import Update

ZH, EN = "zh", "en"

TEXTS: dict[str, dict[str, str]] = {
    ZH: {
        "start": "你好，{name}！我会写五绝、七绝、五律、七律，也会按词牌填词。\n\n{help}",
        "help": (
            "/poem — 随机写一首七绝（或你在 /settings 里选的诗体）\n"
            "/poem 春风 — 以此为题写一首（/poem 送友人归江南 也行）\n"
            "/poem 五律 明月 — 指定诗体和主题（五绝 七绝 五律 七律）\n"
            "/poem 藏头 春夏秋冬 或 /acrostic 春夏秋冬 — 藏头诗\n"
            "/poem 李白 明月 — 仿一位诗人的风格写（/styles 查看可仿的风格）\n"
            "回复一首诗发 /poem — 仿写那首诗\n"
            "/similar — 找与你口味相近的古诗；回复一首诗发 /similar — 找与它相近的诗\n"
            "/couplet 海阔凭鱼跃 — 对下联；回复一句发 /couplet 也行；/couplet 春 或 /couplet 春 梅花 — 写一副春联\n"
            "/ci 浣溪沙 春愁 — 按词牌填一首词（/poem 浣溪沙 春愁 也行）；/ci — 常用词牌\n"
            "/daily — 订阅或退订每日一诗\n"
            "/styles — 可仿的诗人风格\n"
            "/settings — 简繁、默认诗体、默认风格、创意程度\n\n"
            "诗下的按钮：❤️ 收藏，🔄 再来一首，🔍 相似的诗，✏️ 保留几句、其余重写，📖 注音释义，🖼 诗卡图片。\n"
            "在任何聊天里输入 @我的用户名 加主题（如 春风、藏头 春夏秋冬），就能把诗发给朋友。"
        ),
        "cmd_start": "开始",
        "cmd_help": "用法说明",
        "cmd_poem": "写一首诗：/poem [风格] [诗体] [主题]",
        "cmd_acrostic": "藏头诗：/acrostic 春夏秋冬",
        "cmd_ci": "填词：/ci 浣溪沙 春愁",
        "cmd_similar": "找相近的古诗",
        "cmd_daily": "订阅或退订每日一诗",
        "cmd_styles": "可仿的诗人风格",
        "cmd_settings": "简繁、默认诗体、风格、创意",
        "model_loading": "模型加载中，诗马上就来。",
        "queued_no_worker": "写诗的服务暂时不在线。你的请求已经排队，服务恢复后会自动送到。",
        "rate_limited": "写得太快啦，请 {seconds} 秒后再试。",
        "busy": "现在请求太多，请 {seconds} 秒后再试。",
        "unknown_form": "不认识的诗体「{form}」。可选：五绝、七绝、五律、七律。",
        "too_long": "输入太长了：最多 {limit} 个字。",
        "too_many_keywords": "主题词太多了：最多 {limit} 个。",
        "title_too_long": "题目太长了：最多 {limit} 个字，例如 /poem 送友人归江南。",
        "keyword_too_long": "主题词「{word}」比一句诗（{n} 个字）还长，拆成几个词试试，例如 /poem 春风 明月。",
        "unknown_chars": "模型不会写这些字：{chars}。换几个字试试。",
        "not_chinese": "主题、藏头和保留的句子只能用汉字：{chars} 不行。",
        "acrostic_missing": "藏头诗要给出藏头的字，例如 /acrostic 春夏秋冬",
        "acrostic_too_long": "藏头最多 {limit} 个字（七律、五律有 8 句）。",
        "bad_field": "请求有误：{field} 的值不对。",
        "kept_line_missing": "这首诗只有 {n_lines} 句，没有第 {line} 句。",
        "kept_line_length": "保留的第 {line} 句「{text}」不是 {n} 个字。",
        "all_lines_kept": "每一句都保留了，主题词没有地方放了。",
        "acrostic_clash": "保留的第 {line} 句「{text}」不以藏头字「{char}」开头。",
        "no_room": "主题词共 {need} 个字，诗里只剩 {free} 个空位。少几个词试试。",
        "too_many_examples": "范诗太多了：最多 {limit} 首。",
        "example_too_long": "范诗太长了：每首最多 {limit} 个字。",
        "examples_unknown": "范诗里没有模型认识的字。",
        "bad_style": "风格名最多 {limit} 个字符，不能有空格。",
        "bad_sampling": "采样参数 {field} 须在 {low} 与 {high} 之间。",
        "bad_seed": "种子须是一个非负整数，例如 种子:7，而不是「{value}」。",
        "unknown_style": ("没有「{name}」这个风格。现有风格：{styles_zh}。\n"
                          "用法：/poem {example} 明月；/styles 查看每种风格。想以「{name}」为主题，请发 /poem 主题:{name}"),
        "unknown_style_none": ("现在还没有可仿的诗人风格，「{name}」也不在其中。/poem 加主题照常写诗；"
                               "想以「{name}」为主题，请发 /poem 主题:{name}"),
        "style_missing": "请写出风格的名字，例如 /poem 风格:李白 明月。/styles 查看全部风格。",
        "two_styles": "一首诗只能仿一种风格：「{first}」和「{second}」选一个吧。",
        "style_label": "— 仿{title}",
        "styles_title": "可仿的风格：",
        "styles_hint": ("用法：/poem {example} 明月，/poem {example} 七律 秋兴，或 /poem 风格:{example}。\n"
                        "在 /settings 里可设默认风格；/poem 风格:无 则不仿任何人。"),
        "styles_default": "你的默认风格：{title}",
        "styles_none": "现在还没有可仿的诗人风格。诗照常写：/poem 春风",
        "style_base": "不仿",
        "style_unavailable": "{name}（暂不可用）",
        "style_gone": "这个风格现在不可用了。",
        "impossible": "这个要求写不出来：{detail}",
        "invalid": "请求有误：{detail}",
        "internal": "写诗时出了点问题，请再试一次。",
        "no_model": "模型还没准备好，请稍后再试。",
        "not_text": "我只看得懂文字消息。试试 /poem 春风",
        "chatter_hint": "想写诗吗？发送 /poem 加主题，例如 /poem 春风。/help 查看全部用法。",
        "unknown_command": "我不认识 {command} 这个命令。/help 查看全部用法。",
        "edited": "我不处理修改过的消息，请重新发送一条。",
        "error": "出错了，请稍后再试。",
        "redis_down": "服务暂时不可用，请稍后再试。",
        "request_held": "收到了。服务此刻有些拥挤，你的诗稍后送到，不用再发一次。",
        "gave_up": "抱歉，你刚才的请求试了几次都没能处理好，请再发一次。",
        "cb_invalid": "这个按钮无效。",
        "cb_stale": "这首诗已过期。发送 /poem 再写一首吧。",
        "not_yours": "这是别人的诗，只有作者本人能点这个按钮。",
        "liked": "已收藏 ❤️",
        "already_liked": "已经收藏过了。",
        "keep_prompt": "点选要保留的句子，再按「重写其余」。",
        "keep_none": "请至少选一句保留。",
        "keep_all": "全部保留就不用重写了。",
        "keep_started": "好，保留所选的句子，其余重写。",
        "another_started": "好，再写一首。",
        "similar_started": "找相近的诗……",
        "similar_title": "与你的口味相近的诗：",
        "similar_poem_title": "与这首诗相近的诗：",
        "similar_new_user": "你还没有写诗或收藏的记录，先读读这些常被传诵的诗。\n给喜欢的诗点 ❤️，/similar 会越来越懂你。",
        "similar_unavailable": "相似诗搜索暂不可用。",
        "similar_building": "相似诗的索引正在后台建立（第一次运行要几分钟），建好后 /similar 就能用，不必重启。"
                            "现在可以先用 /poem 写诗。",
        "similar_none": "没有找到更多相近的诗。",
        "similar_not_poem": "回复的消息里没有找到诗句。",
        "why_words": "共有意象：{words}",
        "why_words_sep": "、",
        "why_near_liked": "近你收藏的「{line}」",
        "why_near": "近你的「{line}」",
        "why_mood": "意境相近",
        "why_canon": "选入《{name}》",
        "imitate_note": "仿作",
        "daily_on": "已订阅每日一诗，每天 {time}（{tz}）送到。",
        "daily_off": "已退订每日一诗。",
        "daily_status_on": "你已订阅每日一诗（每天 {time}，{tz}）。",
        "daily_status_off": "你还没有订阅每日一诗（每天 {time}，{tz}）。",
        "daily_subscribe": "🔔 订阅",
        "daily_unsubscribe": "🔕 退订",
        "daily_title": "每日一诗 · {date}",
        "daily_card_title": "每日一诗",
        "daily_ci_card_title": "每日一词",
        "daily_bad_arg": "用法：/daily on 订阅，/daily off 退订。",
        "admin_only": "只有管理员能用这个命令。",
        "daily_now_started": "已安排一首每日诗，生成后会发出。",
        "settings": "设置\n字体：{script}\n默认诗体：{form}\n默认风格：{style}\n创意：{creativity}",
        "settings_saved": "已保存。",
        "script_s": "简体",
        "script_t": "繁體",
        "creativity_0": "稳",
        "creativity_1": "中",
        "creativity_2": "奇",
        "btn_like": "❤️ 喜欢",
        "btn_another": "🔄 再来",
        "btn_similar": "🔍 相似",
        "btn_keep": "✏️ 保留",
        "btn_gloss": "📖 注音释义",
        "btn_card": "🖼 诗卡",
        "card_unavailable": "诗卡暂时做不了，请稍后再试。",
        "inline_fresh": "新作",
        "inline_recent": "近作",
        "inline_card": "诗卡",
        "inline_none": "现在写不出来，稍后再试",
        "inline_help": "输入主题，如 春风；或 藏头 春夏秋冬",
        "gloss_gone": "这首诗已不在索引里。",
        "btn_rewrite": "✅ 重写其余",
        "btn_cancel": "↩️ 取消",
        "rhyme_ok": "押平水韵",
        "rhyme_ok_group": "押平水韵（{group}）",
        "rhyme_bad": "韵脚欠工",
        "tone_rate": "平仄合律 {pct}%",
        "form_bad": "句式不整",
        "untitled": "无题",
        "cmd_couplet": "对对联：/couplet 上联；/couplet 春 写春联",
        "couplet_usage": ("用法：/couplet 上联（4 到 11 个字），例如 /couplet 海阔凭鱼跃；"
                          "回复只有一句的消息发 /couplet 也行；/couplet 春 或 /couplet 春 梅花 写一副春联。"),
        "couplet_length": "上联要 {lo} 到 {hi} 个字，你给的是 {n} 个字。换一句试试，例如 /couplet 海阔凭鱼跃",
        "couplet_length_worker": "上联要 4 到 11 个字，这句是 {n} 个字。",
        "couplet_not_han": "上联只能用汉字：{chars} 不行。",
        "couplet_theme": "春联的主题最多 {limit} 个词，每个词最多 4 个字，例如 /couplet 春 梅花 瑞雪",
        "couplet_one_line": "回复的消息要只有一句（当作上联），这条有 {n} 句。也可以直接发 /couplet 上联",
        "couplet_title": "对联",
        "spring_title": "春联",
        "couplet_first": "上联",
        "couplet_second": "下联",
        "couplet_banner": "横批",
        "couplet_others": "也可对：",
        "couplet_ends_ping": ("小提示：对联一般上联以仄声收尾、下联以平声收尾。你这句末字「{char}」是平声，"
                              "更像下联；我仍按平仄相对，对了一句以仄声收尾的。"),
        "btn_couplet_card": "🖼 春联图",
        "couplet_another_started": "好，再对几句。",
        "no_couplet_model": "对对联的模型还没准备好，请稍后再试。",
        "no_ci_model": "填词的模型还没准备好，请稍后再试；写诗照常，例如 /poem 春愁。",
        "daily_spring_title": "春节将至 · 春联 · {date}",
        "daily_ci_title": "每日一词 · {date}",
        "unknown_tune": "不认识的词牌「{name}」。相近的有：{close}。发 /ci 查看常用词牌。",
        "tune_missing": "填词要先给出词牌，例如 /ci {example} 春愁。发 /ci 查看常用词牌。",
        "ci_style": "仿诗人风格只用于写诗，{tune} 这首词不能仿。去掉风格再试，例如 /ci {tune} 春愁。",
        "ci_imitation": "词不能仿写一首诗。直接发 /ci {tune} 加主题试试。",
        "ci_rhyme_ok": "押词韵",
        "ci_list_title": "常用词牌（数字是每句的字数，/ 隔开上下片）：",
        "ci_list_hint": ("用法：/ci 词牌 主题，例如 /ci 浣溪沙 春愁、/ci 菩萨蛮 藏头 春夏秋冬；"
                         "/poem 浣溪沙 春愁 也行。词牌的别名和繁体也认得。"),
    },
    EN: {
        "start": ("Hello, {name}! I write classical Chinese poems: 五绝, 七绝, 五律 and 七律, and 词 (song lyrics) "
                  "to the Song tunes.\n\n{help}"),
        "help": (
            "/poem — a random 七绝 (or the form chosen in /settings)\n"
            "/poem 春风 — a poem under that title (/poem 送友人归江南 works too)\n"
            "/poem 五律 明月 — form and theme (五绝 七绝 五律 七律)\n"
            "/poem 藏头 春夏秋冬 or /acrostic 春夏秋冬 — an acrostic\n"
            "/poem 李白 明月 — in the manner of a poet (/styles lists them)\n"
            "Reply /poem to a poem — imitate it\n"
            "/similar — classical poems close to your taste; reply /similar to a poem — poems close to it\n"
            "/couplet 海阔凭鱼跃 — a 下联 for your 上联 (or reply /couplet to a line); /couplet 春 or "
            "/couplet 春 梅花 — a whole 春联 for the Spring Festival\n"
            "/ci 浣溪沙 春愁 — a 词 (song lyric) to a tune (/poem 浣溪沙 春愁 works too); /ci — the common tunes\n"
            "/daily — subscribe to or leave the daily poem\n"
            "/styles — the poets' styles I can write in\n"
            "/settings — script, default form, default style, creativity\n\n"
            "Buttons under a poem: ❤️ like, 🔄 another, 🔍 similar poems, ✏️ keep lines and rewrite the rest, "
            "📖 reading aid, 🖼 the poem as a picture card.\n"
            "In any chat, type my @username and a theme (春风, or 藏头 春夏秋冬) to share a poem."
        ),
        "cmd_start": "Start",
        "cmd_help": "How to use the bot",
        "cmd_poem": "Write a poem: /poem [style] [form] [theme]",
        "cmd_acrostic": "Acrostic: /acrostic 春夏秋冬",
        "cmd_ci": "A 词 to a tune: /ci 浣溪沙 春愁",
        "cmd_similar": "Classical poems close to your taste",
        "cmd_daily": "Subscribe to the daily poem",
        "cmd_styles": "Poets' styles to write in",
        "cmd_settings": "Script, default form, style, creativity",
        "model_loading": "The model is loading: your poem will follow in a moment.",
        "queued_no_worker": "The poem writer is offline right now. Your request is queued and will be answered when it is back.",
        "rate_limited": "Slow down a little: try again in {seconds} s.",
        "busy": "I am busy right now: try again in {seconds} s.",
        "unknown_form": "Unknown form “{form}”. Choose 五绝, 七绝, 五律 or 七律.",
        "too_long": "That is too long: at most {limit} characters.",
        "too_many_keywords": "Too many theme words: at most {limit}.",
        "title_too_long": "The title is too long: at most {limit} characters, e.g. /poem 送友人归江南.",
        "keyword_too_long": "The theme word “{word}” is longer than a line ({n} characters); split it, e.g. /poem 春风 明月.",
        "unknown_chars": "The model cannot write these characters: {chars}. Try others.",
        "not_chinese": "Themes, acrostics and kept lines must be Chinese characters: {chars} are not.",
        "acrostic_missing": "An acrostic needs its characters, e.g. /acrostic 春夏秋冬",
        "acrostic_too_long": "An acrostic has at most {limit} characters (a 律诗 has 8 lines).",
        "bad_field": "Bad request: the value of {field} is wrong.",
        "kept_line_missing": "This poem has {n_lines} lines; there is no line {line}.",
        "kept_line_length": "Kept line {line} “{text}” does not have {n} characters.",
        "all_lines_kept": "Every line is kept: there is no room left for the theme words.",
        "acrostic_clash": "Kept line {line} “{text}” does not begin with the acrostic's “{char}”.",
        "no_room": "The theme words need {need} characters but only {free} are free. Try fewer.",
        "too_many_examples": "Too many example poems: at most {limit}.",
        "example_too_long": "An example poem is too long: at most {limit} characters.",
        "examples_unknown": "The example poems hold no character the model knows.",
        "bad_style": "A style name has at most {limit} characters and no spaces.",
        "bad_sampling": "The sampling setting {field} must be between {low} and {high}.",
        "bad_seed": "A seed is a whole number, e.g. seed:7, not “{value}”.",
        "unknown_style": ("There is no style “{name}”. The styles are: {styles_en}.\n"
                          "Usage: /poem {example} 明月; /styles describes each. For a poem about “{name}”, "
                          "send /poem 主题:{name}"),
        "unknown_style_none": ("There are no poets' styles to write in yet, so none for “{name}”. /poem with a "
                               "theme writes as usual; for a poem about “{name}”, send /poem 主题:{name}"),
        "style_missing": "Name the style, e.g. /poem style:libai 明月. /styles lists them.",
        "two_styles": "One style per poem: choose “{first}” or “{second}”.",
        "style_label": "— in the manner of {title}",
        "styles_title": "Styles I can write in:",
        "styles_hint": ("Usage: /poem {example} 明月, /poem {example} 七律 秋兴, or /poem style:{example}.\n"
                        "Choose a default style in /settings; /poem style:none imitates nobody."),
        "styles_default": "Your default style: {title}",
        "styles_none": "There are no poets' styles to write in yet. Poems work as usual: /poem 春风",
        "style_base": "none",
        "style_unavailable": "{name} (unavailable now)",
        "style_gone": "That style is no longer available.",
        "impossible": "No poem can meet that request: {detail}",
        "invalid": "Bad request: {detail}",
        "internal": "Something went wrong while writing; please try again.",
        "no_model": "The model is not ready yet; please try again later.",
        "not_text": "I only read text messages. Try /poem 春风",
        "chatter_hint": "Want a poem? Send /poem with a theme, e.g. /poem 春风. /help lists everything.",
        "unknown_command": "I do not know the command {command}. /help lists everything.",
        "edited": "I do not act on edited messages; please send a new one.",
        "error": "Something went wrong; please try again later.",
        "redis_down": "The service is unavailable right now; please try again later.",
        "request_held": "Got it. The service is briefly congested: your poem will follow, no need to send it again.",
        "gave_up": "Sorry: I tried several times but could not handle your last request. Please send it again.",
        "cb_invalid": "This button is not valid.",
        "cb_stale": "This poem has expired. Send /poem for a new one.",
        "not_yours": "This is someone else's poem: only its author can press this.",
        "liked": "Liked ❤️",
        "already_liked": "You already liked it.",
        "keep_prompt": "Tap the lines to keep, then “Rewrite the rest”.",
        "keep_none": "Choose at least one line to keep.",
        "keep_all": "Keeping every line leaves nothing to rewrite.",
        "keep_started": "OK: keeping those lines and rewriting the rest.",
        "another_started": "OK, another one.",
        "similar_started": "Looking for similar poems…",
        "similar_title": "Poems close to your taste:",
        "similar_poem_title": "Poems close to this one:",
        "similar_new_user": "No poems or likes from you yet, so here are some well-loved poems.\nLike poems with ❤️ and /similar will learn your taste.",
        "similar_unavailable": "Similar-poem search is not available right now.",
        "similar_building": "The index behind /similar is being built in the background (a few minutes on a "
                            "first run); /similar works as soon as it is ready, no restart needed. /poem works "
                            "already.",
        "similar_none": "No more similar poems found.",
        "similar_not_poem": "I found no poem in the message you replied to.",
        "why_words": "shared imagery: {words}",
        "why_words_sep": ", ",
        "why_near_liked": "near “{line}”, which you liked",
        "why_near": "near your “{line}”",
        "why_mood": "close in mood",
        "why_canon": "in {name}",
        "imitate_note": "imitation",
        "daily_on": "Subscribed: a poem every day at {time} ({tz}).",
        "daily_off": "Unsubscribed from the daily poem.",
        "daily_status_on": "You get the daily poem (every day at {time}, {tz}).",
        "daily_status_off": "You do not get the daily poem (every day at {time}, {tz}).",
        "daily_subscribe": "🔔 Subscribe",
        "daily_unsubscribe": "🔕 Unsubscribe",
        "daily_title": "Poem of the day · {date}",
        "daily_card_title": "每日一诗",          # the card's title: cards are set in Chinese for everyone
        "daily_ci_card_title": "每日一词",
        "daily_bad_arg": "Usage: /daily on to subscribe, /daily off to leave.",
        "admin_only": "Only admins can use this command.",
        "daily_now_started": "A daily poem is on its way.",
        "settings": "Settings\nScript: {script}\nDefault form: {form}\nDefault style: {style}\nCreativity: {creativity}",
        "settings_saved": "Saved.",
        "script_s": "简体 simplified",
        "script_t": "繁體 traditional",
        "creativity_0": "calm",
        "creativity_1": "balanced",
        "creativity_2": "wild",
        "btn_like": "❤️ Like",
        "btn_another": "🔄 Another",
        "btn_similar": "🔍 Similar",
        "btn_keep": "✏️ Keep",
        "btn_gloss": "📖 Reading aid",
        "btn_card": "🖼 Card",
        "card_unavailable": "Cards cannot be made right now; please try again later.",
        "inline_fresh": "new",
        "inline_recent": "recent",
        "inline_card": "poem card",
        "inline_none": "No poem right now: try again soon",
        "inline_help": "Type a theme (春风) or 藏头 春夏秋冬",
        "gloss_gone": "That poem is no longer in the index.",
        "btn_rewrite": "✅ Rewrite the rest",
        "btn_cancel": "↩️ Cancel",
        "rhyme_ok": "rhymes (平水韵)",
        "rhyme_ok_group": "rhymes (平水韵 {group})",
        "rhyme_bad": "rhyme imperfect",
        "tone_rate": "tones {pct}% regular",
        "form_bad": "irregular lines",
        "untitled": "untitled",
        "cmd_couplet": "Couplets: /couplet 上联, or /couplet 春 for a 春联",
        "couplet_usage": ("Usage: /couplet and a 上联 of 4 to 11 characters, e.g. /couplet 海阔凭鱼跃; or reply "
                          "/couplet to a one-line message; /couplet 春 or /couplet 春 梅花 writes a whole 春联."),
        "couplet_length": "A 上联 has {lo} to {hi} characters; yours has {n}. Try another, e.g. /couplet 海阔凭鱼跃",
        "couplet_length_worker": "A 上联 has 4 to 11 characters; this one has {n}.",
        "couplet_not_han": "A 上联 is written in Chinese characters only: {chars} cannot be used.",
        "couplet_theme": "A 春联 takes at most {limit} theme words of up to 4 characters, e.g. /couplet 春 梅花 瑞雪",
        "couplet_one_line": "Reply to a message holding one line (the 上联); this one has {n}. Or send /couplet 上联",
        "couplet_title": "对联 couplet",
        "spring_title": "春联 Spring Festival couplet",
        "couplet_first": "上联",
        "couplet_second": "下联",
        "couplet_banner": "横批",
        "couplet_others": "Also possible:",
        "couplet_ends_ping": ("A note: a 上联 usually ends on a 仄 (oblique) tone and its 下联 on a 平 (level) one. "
                              "Yours ends on 「{char}」, a 平 tone, so it reads like a 下联; I still matched the "
                              "tones and ended the answer on a 仄 tone."),
        "btn_couplet_card": "🖼 Scrolls",
        "couplet_another_started": "More 下联 coming.",
        "no_couplet_model": "The couplet model is not ready yet; please try again later.",
        "no_ci_model": "The 词 model is not ready yet; please try again later. Poems work as ever, e.g. /poem 春愁.",
        "daily_spring_title": "Spring Festival is coming · 春联 · {date}",
        "daily_ci_title": "Song lyric (词) of the day · {date}",
        "unknown_tune": "I do not know the tune “{name}”. Close ones: {close}. Send /ci for the common tunes.",
        "tune_missing": "A 词 is written to a tune: name one, e.g. /ci {example} 春愁. Send /ci for the common tunes.",
        "ci_style": "Poets' styles are for 诗 only, not for a {tune}. Try without the style, e.g. /ci {tune} 春愁.",
        "ci_imitation": "A 词 cannot imitate a poem. Send /ci {tune} with a theme instead.",
        "ci_rhyme_ok": "rhymes (词韵)",
        "ci_list_title": "Common tunes (词牌): characters per line, / between the two stanzas:",
        "ci_list_hint": ("Usage: /ci TUNE THEME, e.g. /ci 浣溪沙 春愁 or /ci 菩萨蛮 藏头 春夏秋冬; /poem 浣溪沙 春愁 "
                         "works too. Other names of a tune and traditional characters work as well."),
    },
}

# Worker error codes -> text keys; anything else is reported as an internal error.
ERROR_KEYS: dict[str, str] = {
    E_INVALID: "invalid",
    E_IMPOSSIBLE: "impossible",
    E_UNKNOWN_CHARS: "unknown_chars",
    E_NO_MODEL: "no_model",
    E_INTERNAL: "internal",
    E_DEAD_LETTER: "internal",
    E_UNKNOWN_STYLE: "unknown_style",
    E_COUPLET_LENGTH: "couplet_length_worker",
    E_NO_COUPLET_MODEL: "no_couplet_model",
    E_NO_CI_MODEL: "no_ci_model",
}
# protocol.jobs.validate_generate's message for E_UNKNOWN_STYLE: no style 'x'; the styles are: a, b
_UNKNOWN_STYLE_RE = re.compile(r"""no style (['"])(.*)\1; the styles are: (.*)$""")


def unknown_style_detail(message: str | None) -> tuple[str, list[str]]:
    """The style asked for and the ids the worker has, from an E_UNKNOWN_STYLE message."""
    match = _UNKNOWN_STYLE_RE.search(message or "")
    if match is None:
        return "?", []
    return match[2], [x for x in match[3].split(", ") if x and x != "none"]


def lang_of(language_code: str | None) -> str:
    """English for users whose Telegram language is English, Chinese for everyone else."""
    return EN if (language_code or "").lower().startswith("en") else ZH


def user_lang(update: "Update") -> str:
    """The language to answer the sender of update in (lang_of their Telegram language)."""
    user = update.effective_user
    return lang_of(user.language_code if user else None)


def t(lang: str, key: str, **values: object) -> str:
    table = TEXTS.get(lang, TEXTS[ZH])
    template = table.get(key, TEXTS[ZH][key])
    return template.format(**values) if values else template


def error_text(lang: str, code: str | None, message: str | None) -> str:
    """A worker or validation error (protocol.jobs E_* code and English detail) for this user."""
    key = ERROR_KEYS.get(code or "", "internal")
    detail = message or ""
    if key == "unknown_chars":
        # The detail reads "the model cannot write XYZ: ..."; show the characters, not the English.
        match = re.search(r"cannot write (\S+?):", detail)
        return t(lang, key, chars=" ".join(match[1]) if match else "?")
    if key == "unknown_style":
        # The worker's list, by id (bot.delivery shows the registry's titles for them).
        name, ids = unknown_style_detail(detail)
        if not ids:
            return t(lang, "unknown_style_none", name=name)
        return t(lang, key, name=name, styles_zh="、".join(ids), styles_en=", ".join(ids), example=ids[0])
    if key == "couplet_length_worker":
        # The detail reads "a 上联 has 4 to 11 characters; this one has N".
        match = re.search(r"this one has (\d+)", detail)
        return t(lang, key, n=match[1] if match else "?")
    if key in ("invalid", "impossible"):
        return t(lang, key, detail=detail)
    return t(lang, key)
