"""The corpus: fetching the chinese-poetry package (`fetch`), reading it raw (`raw`), building the
training corpus and the ci file from it (`build_corpus`, `build_ci`), reading what was built (`reader`,
`ci_reader`), and what is counted out of it: the prosody report, the committed prosody tables and the
learned 词谱 (`prosody_report`, `tables`, `learn_tunes`). No TensorFlow: the model and training read it.
"""
