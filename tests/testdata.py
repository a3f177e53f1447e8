"""Paths and sizes shared by the test packages (importable as `testdata`: pytest puts tests/ on sys.path)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # read-only reference corpora, by relative path
VERSE = REPO / "corpora" / "verse" / "corpus.txt"
CHAT = REPO / "corpora" / "chat" / "corpus.txt"

TINY_MODEL = dict(window=8, embedding_dim=16, units=16)  # trains in seconds on 2 cores
TINY_TRAIN = dict(epochs=1, batch_size=256, min_count=2)

# Original Chinese prose written for these tests (no third-party text). "春风" never occurs in it, but 春 and 风 do.
CHINESE = (
    "小城的早晨很安静。河边的柳树慢慢发芽，老人们在桥上喝茶，孩子们跑来跑去。春天来了，雨水也多了。"
    "我喜欢在雨后散步，听鸟儿在树上唱歌。下午的风很大，吹得窗户吱吱作响。妈妈在厨房里做饭，爸爸在院子里修自行车。"
    "晚上，我们一家人坐在一起吃饭，说说今天发生的事情。猫在门口睡觉，月亮慢慢升起来。\n"
    "明天我要去山上看花，带上面包和水，还有一本书。山上的空气很新鲜，花开得很好看。"
    "我想把这些写下来，留给以后的自己。朋友说春天的山最美，风吹过来的时候，满山的花都在笑。\n"
)
