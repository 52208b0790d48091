"""Test fixtures for the text-conditioning stage (spec sections 1.1-1.3, 7, 8).

Run from the repository root with Debian's python (python3-torch, python3-sentencepiece,
python3-protobuf):  /usr/bin/python3 test/reference/make_t5_cases.py

Writes
  test/fixtures/tokenizer/spiece.model       a small SentencePiece unigram model trained here with
                                             T5's settings (pad 0, eos 1, unk 2, no bos, nmt_nfkc,
                                             no byte fallback) on a corpus this script writes
  test/fixtures/tokenizer/tokenizer.json     the same model converted the way Hugging Face's T5
                                             converter does (Precompiled charsmap normaliser,
                                             Metaspace pre-tokenizer, Unigram with the 100 T5 extra
                                             ids appended, post-processor appending </s>)
  test/fixtures/tokenizer/config.json        the tiny T5 config of spec section 8 (vocab = the tokenizer's)
  test/fixtures/tokenizer/expected_ids.json  reference ids: upstream's T5Tokenizer behaviour, i.e.
                                             SentencePiece ids + </s> (special tokens split out first),
                                             for >= 200 prompts; the 128-token processor outputs with
                                             negative prompts; relative-position bucket tables
  test/fixtures/parity/t5_gated_silu, t5_gated_gelu
                                             T5 encoder parity cases (module "t5_encoder")
  test/fixtures/tokenizer/conditioning.safetensors
                                             the Kandinsky projection (Linear without bias + LayerNorm),
                                             masking, truncation to L+1 and the inf rule

The T5 encoder below is written from the T5 description (spec section 7), not from transformers
(which is not installed): RMS norm, unscaled attention with the bidirectional relative-position
bias of block 0 reused by every layer, padding keys masked, gated feed-forward.
Everything is deterministic: the output is byte-identical from run to run.
"""
import base64
import io
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile

import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from st import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
TOK_DIR = os.path.join(ROOT, "test", "fixtures", "tokenizer")
PARITY_DIR = os.path.join(ROOT, "test", "fixtures", "parity")
EXTRA_IDS = 100  # T5Tokenizer's default <extra_id_N> sentinels
MAX_TOKENS = 128  # upstream's tokens_length

# ---------------------------------------------------------------------------------------------
# 1. The corpus and the SentencePiece model
# ---------------------------------------------------------------------------------------------

SUBJECTS = """car;red car;white ghost;jellyfish;volcano;waterfall;dog;cat;horse;dragon;robot;astronaut;
old man;young woman;child;bird;eagle;whale;dolphin;fox;wolf;bear;lion;tiger;butterfly;train;ship;boat;
airplane;rocket;city;forest;river;mountain;desert;ocean;castle;lighthouse;bridge;garden;flower;tree;
storm;cloud;rainbow;sunset;sunrise;moon;galaxy;planet;comet;knight;wizard;princess;samurai;pirate;
scientist;chemist;painter;musician;dancer;chef;farmer;soldier;monk;detective;teacher;student;family;
crowd;market;street;village;temple;cathedral;library;laboratory;kitchen;factory;harbor;island;glacier;
canyon;meadow;jungle;rainforest;coral reef;cave;waterfalls;neon sign;skyscraper;motorcycle;bicycle""".replace("\n", "").split(";")
ADJECTIVES = """majestic;luminescent;ancient;futuristic;tiny;giant;glowing;dark;bright;colorful;misty;foggy;
snowy;rainy;sunny;golden;silver;crystal;wooden;metallic;mysterious;peaceful;chaotic;beautiful;lonely;
happy;sad;angry;calm;wild;lush;frozen;burning;shiny;rusty;vintage;modern;surreal;magical;epic;cozy;
quiet;loud;fast;slow;heavy;light;soft;sharp;huge;small;raw;molten;electric;cosmic;underwater;flying""".replace("\n", "").split(";")
ACTIONS = """moving on the road;drifting;flying through the sky;swimming underwater;running across the field;
walking in the rain;dancing in the street;exploding;erupting;falling;rising;spinning slowly;
jumping over the fence;climbing the mountain;sailing across the sea;flowing down the valley;
burning in the night;glowing in the dark;floating in space;reading a book;cooking dinner;
playing the piano;painting a picture;fighting a dragon;crossing the bridge;hiding in the forest;
looking at the stars;sleeping under a tree;racing along the coast;landing on the moon;
diving into the water;melting in the sun;growing in the garden;shining above the city;
moving from the sea to the mountains;swims underwater;flies through a night clearing""".replace("\n", "").split(";")
STYLES = """4k;4k video;8k;cinematic;photorealistic;highly detailed;oil painting;watercolor;anime style;
pixel art;unreal engine;studio lighting;golden hour;slow motion;close view;wide angle;aerial view;
drone shot;time lapse;fast movement;neon;mist;biodiversity;dramatic lighting;soft focus;black and white;
HDR;trending on artstation;macro shot;long exposure""".replace("\n", "").split(";")
PLACES = """in a lush rainforest;on the road;near the sea;in the mountains;at night;in the morning;
under the water;in a chemistry laboratory;on a distant planet;in an old city;in the desert;on the beach;
in a snowy forest;above the clouds;inside a cave;on a busy street;in a quiet village;at the harbor;
in a field of flowers;by the river""".replace("\n", "").split(";")
MORE_WORDS = """apple orange banana cherry lemon grape melon peach pear plum berry carrot potato tomato onion
garlic pepper bread cheese butter honey sugar coffee tea water juice wine beer milk soup salad pizza pasta rice
noodle cake cookie chocolate candle lamp mirror window door roof wall floor stair chair table sofa bed pillow
blanket curtain carpet clock watch phone camera computer screen keyboard guitar violin drum trumpet flute piano
umbrella hat coat jacket shirt dress skirt boots shoes gloves scarf ring necklace crown sword shield armor
helmet arrow bow spear hammer axe wheel engine motor battery cable wire antenna satellite telescope microscope
compass map globe letter envelope stamp ticket passport suitcase backpack basket bottle glass cup plate bowl
spoon fork knife kettle oven fridge stove sink bathtub shower towel soap brush comb paint canvas sculpture statue
fountain pond lake stream creek spring valley hill cliff peak ridge slope plain prairie savanna tundra swamp marsh
delta estuary bay gulf strait lagoon beach shore coast dune oasis volcano crater geyser lava ash smoke fire flame
spark ember thunder lightning tornado hurricane blizzard avalanche earthquake tsunami flood drought breeze wind
gale frost dew hail sleet snowflake icicle iceberg aurora eclipse nebula quasar pulsar asteroid meteor orbit
gravity energy power force motion speed velocity light shadow reflection silhouette pattern texture color shape
circle square triangle spiral wave ripple particle molecule atom crystal diamond emerald ruby sapphire pearl amber
marble granite sandstone limestone copper bronze iron steel gold platinum aluminum plastic rubber leather cotton
silk wool linen velvet denim paper cardboard glassware pottery ceramic porcelain origami mosaic tapestry embroidery
photograph portrait landscape panorama skyline horizon silhouette reflection festival carnival parade concert
theater opera ballet circus museum gallery stadium arena airport station highway tunnel railway subway
penguin parrot owl hawk falcon swan duck goose pigeon sparrow crow raven flamingo peacock hummingbird octopus
squid shark turtle frog lizard snake crocodile elephant giraffe zebra rhino hippo kangaroo koala panda monkey
gorilla deer moose rabbit squirrel mouse hamster hedgehog beaver otter seal walrus camel llama sheep goat cow pig
chicken rooster donkey mule puppy kitten""".split()
VERBS = """running walking jumping swimming flying crawling climbing sliding rolling bouncing glowing shimmering
sparkling twinkling flickering blinking fading emerging vanishing appearing transforming melting freezing boiling
steaming smoking burning exploding collapsing crumbling shattering breaking building constructing painting drawing
writing singing dancing laughing crying smiling whispering shouting sleeping dreaming waking thinking watching
listening searching finding losing winning fighting chasing hunting fishing sailing rowing surfing skiing skating
driving riding racing cycling hiking camping cooking baking eating drinking reading studying teaching learning
playing working resting waiting hoping wandering exploring discovering inventing repairing cleaning washing
planting harvesting blooming wilting growing shrinking expanding rotating orbiting drifting floating sinking
rising falling pouring dripping splashing spraying blowing whirling swirling twisting turning weaving knitting
sewing carving sculpting""".split()

EXTRA_SENTENCES = [
    "A car moving on the road from the sea to the mountains",
    "A red car drifting, 4k video",
    "Chemistry laboratory, chemical explosion, 4k",
    "Erupting volcano raw power, molten lava, and the forces of the Earth",
    "Luminescent jellyfish swims underwater, neon, 4k",
    "Majestic waterfalls in a lush rainforest power, mist, and biodiversity",
    "White ghost flies through a night clearing, 4k",
    "Craft a heartwarming narrative showcasing the bond between a human and their loyal pet companion",
    "The quick brown fox jumps over the lazy dog.",
    "Numbers like 1, 2, 3, 10, 42, 100, 2023 and 3.14 appear in prompts.",
    "Punctuation: commas, periods. Questions? Exclamations! Quotes \"like this\" and 'this'.",
    "Brackets (round) [square] {curly} <angle> and symbols # $ % & * + - / = @ ^ _ | ~",
    "Café crème, naïve façade, résumé, Straße, München, Zürich, São Paulo, Ångström.",
    "Москва, Санкт-Петербург, красивый закат над рекой, снег и лес.",
    "東京の夜景、富士山、桜の花、雨の日の街。",
    "Ελληνικά γράμματα: αβγδε, Αθήνα, θάλασσα.",
    "Full-width ＡＢＣ　ｆｕｌｌ　ｗｉｄｔｈ and ligatures ﬁne ﬂow, ① ② ③, ½ ¼, ™ ℃.",
    "Heart-warming, well-known, state-of-the-art, high-quality, slow-motion.",
    "Don't stop; it's a dog's life, isn't it? We'll see, they're here.",
]


def corpus_lines(seed=1234, n=4000):
    rng = random.Random(seed)
    lines = list(EXTRA_SENTENCES) * 20
    for _ in range(n):
        parts = [rng.choice(["A", "An", "The", "Two", "Many", "One"]), rng.choice(ADJECTIVES), rng.choice(SUBJECTS),
                 rng.choice(ACTIONS)]
        if rng.random() < 0.8:
            parts += ["with", rng.choice(["a", "the", "some"]), rng.choice(MORE_WORDS), rng.choice(VERBS),
                      "near", rng.choice(["a", "the"]), rng.choice(MORE_WORDS)]
        if rng.random() < 0.7:
            parts.append(rng.choice(PLACES))
        s = " ".join(parts)
        for _ in range(rng.randint(0, 3)):
            s += ", " + rng.choice(STYLES)
        if rng.random() < 0.3:
            s = s.lower()
        if rng.random() < 0.2:
            s += "."
        lines.append(s)
    return lines


def train_spm(workdir):
    """A unigram model with T5's special-token layout and normaliser."""
    path = os.path.join(workdir, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus_lines()) + "\n")
    prefix = os.path.join(workdir, "spiece")
    spm.SentencePieceTrainer.train(
        input=path, model_prefix=prefix, model_type="unigram", vocab_size=1200,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        normalization_rule_name="nmt_nfkc", byte_fallback=False, character_coverage=0.9995,
        split_by_whitespace=True, add_dummy_prefix=True, remove_extra_whitespaces=True,
        num_threads=1, seed_sentencepiece_size=100000, shuffle_input_sentence=False,
        input_sentence_size=0, minloglevel=2,
    )
    proto = sp_pb2.ModelProto()
    with open(prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    # The trainer records its temporary paths; keep the file byte-identical from run to run.
    proto.trainer_spec.input[:] = ["corpus.txt"]
    proto.trainer_spec.model_prefix = "spiece"
    return proto.SerializeToString()


# ---------------------------------------------------------------------------------------------
# 2. tokenizer.json, as Hugging Face's T5 converter writes it
# ---------------------------------------------------------------------------------------------

def extra_id_tokens(vocab_size):
    # T5Tokenizer: <extra_id_N> has id vocab_size - 1 - N, so extra_id_99 comes first.
    return [(f"<extra_id_{i}>", vocab_size - 1 - i) for i in range(EXTRA_IDS - 1, -1, -1)]


def convert_to_tokenizer_json(model_bytes):
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(model_bytes)
    n = len(proto.pieces)
    total = n + EXTRA_IDS
    vocab = [[p.piece, float(p.score)] for p in proto.pieces]
    extras = extra_id_tokens(total)
    vocab += [[tok, 0.0] for tok, _ in extras]

    def added(id_, content):
        return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    specials = [added(i, proto.pieces[i].piece) for i in range(n)
                if proto.pieces[i].type in (sp_pb2.ModelProto.SentencePiece.CONTROL,
                                            sp_pb2.ModelProto.SentencePiece.UNKNOWN)]
    charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode("ascii")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": specials + [added(i, tok) for tok, i in extras],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": charsmap},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True,
                          "prepend_scheme": "always"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [proto.trainer_spec.eos_id], "tokens": ["</s>"]}},
        },
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "prepend_scheme": "always"},
        "model": {"type": "Unigram", "unk_id": proto.trainer_spec.unk_id, "vocab": vocab, "byte_fallback": False},
    }


# ---------------------------------------------------------------------------------------------
# 3. Reference ids: upstream's T5Tokenizer (slow, SentencePiece) behaviour
# ---------------------------------------------------------------------------------------------

class ReferenceTokenizer:
    """What transformers' slow T5Tokenizer does with legacy settings (upstream's processor):
    special tokens (</s>, <pad>, <unk>, <extra_id_N>) written in the text are split out first
    (longest match), every other chunk is encoded by SentencePiece on its own, and </s> is
    appended unless the ids already end with it. Truncation to max_length keeps max_length - 1
    ids and then adds </s>."""

    def __init__(self, model_bytes):
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        n = self.sp.get_piece_size()
        self.eos = self.sp.eos_id()
        self.pad = self.sp.pad_id()
        self.special = {"</s>": self.eos, "<pad>": self.pad, "<unk>": self.sp.unk_id()}
        for tok, i in extra_id_tokens(n + EXTRA_IDS):
            self.special[tok] = i
        alts = sorted(self.special, key=len, reverse=True)
        self.split_re = re.compile("(" + "|".join(re.escape(a) for a in alts) + ")")

    def ids_no_eos(self, text):
        out = []
        for chunk in self.split_re.split(text):
            if chunk in self.special:
                out.append(self.special[chunk])
            elif chunk:
                out += self.sp.encode(chunk)
        return out

    def __call__(self, text, max_length=None):
        ids = self.ids_no_eos(text)
        if max_length is not None and len(ids) + 1 > max_length:
            ids = ids[:max_length - 1]
        if not ids or ids[-1] != self.eos:
            ids = ids + [self.eos]
        return ids

    def processor(self, text, negative_text=None):
        """upstream condition_processors.T5TextConditionProcessor.encode, tokens_length 128."""
        ids = self(text, MAX_TOKENS)
        pad_length = MAX_TOKENS - len(ids)
        input_ids = ids + [self.pad] * pad_length
        mask = [1] * len(ids) + [0] * pad_length
        out = {"input_ids": input_ids, "attention_mask": mask}
        if negative_text is not None:
            neg = self(negative_text, MAX_TOKENS)[:len(ids)]
            neg[-1] = self.eos
            out["negative_input_ids"] = neg + [self.pad] * (MAX_TOKENS - len(neg))
            out["negative_attention_mask"] = list(mask)
        return out


GALLERY = EXTRA_SENTENCES[:8]


def test_prompts():
    rng = random.Random(99)
    prompts = list(GALLERY)
    prompts += [
        "", " ", "   ", "\t", "\n", "a", "A", ".", "!!!", "4k", "4K", "8k video",
        "  leading spaces", "trailing spaces   ", "  both  ends  ", "many     inner      spaces",
        "tabs\tand\tnewlines\nin\r\nthe text", "mixed \t \n whitespace", "non\u00a0breaking\u00a0space",
        "ideographic\u3000space", "em\u2003space and thin\u2009space", "zero\u200bwidth", "soft\u00adhyphen",
        "word▁with▁metaspace", "▁leading metaspace", "under_score and hyphen-ated",
        "UPPERCASE PROMPT", "lowercase prompt", "MiXeD CaSe PrOmPt", "CamelCaseWordsTogether",
        "Café crème, naïve façade, résumé", "Cafe\u0301 with a combining accent", "e\u0301\u0301 double combining",
        "Straße in München", "Zürich and São Paulo", "Ångström Å", "ÀÉÎÕÜ àéîõü",
        "Москва ночью, 4k", "красивый закат", "東京の夜景", "富士山と桜", "한국어 텍스트", "中文提示词",
        "Ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย",
        "Full-width ＡＢＣ　ｆｕｌｌ　ｗｉｄｔｈ", "ﬁne ﬂow ligatures", "① ② ③", "½ ¼ ¾", "™ ℃ № ℡", "㍻ ㎏ ㎞",
        "x² + y³ = z⁴", "H₂O and CO₂", "…ellipsis…", "“curly quotes” and ‘single’", "— em dash – en dash",
        "« guillemets »", "emoji 🚗💨 🌋🔥 🐙", "🙂", "flags 🇺🇸🇫🇷", "family 👨‍👩‍👧", "skin 👍🏽",
        "math ∑∫√∞≈≠", "arrows ← → ↑ ↓", "currency € £ ¥ ₽ $", "box ─│┌┐", "dingbats ✓ ✗ ★ ☆",
        "control\u0001chars\u007fhere", "bell\u0007char", "replacement \ufffd char", "bom\ufeffinside",
        "Don't stop; it's a dog's life, isn't it?", "We'll see, they're here, you've been",
        "http://example.com/path?query=1&x=2", "user@example.com", "#hashtag @mention", "C:\\path\\to\\file",
        "1234567890", "3.14159", "1,000,000", "2023-12-01", "12:30 PM", "-5 +7 *3 /2 =1",
        "(round) [square] {curly} <angle>", "<extra_id_0>", "a <extra_id_0> b", "<extra_id_12> then <extra_id_1>",
        "ends with eos </s>", "</s>", "middle </s> eos", "<pad> pad", "<unk>", "no<unk>space",
        "<extra_id_99><extra_id_98>", "<extra_id_100>", "<s> bos is not special", "</ s>",
        "A", "AA", "AAA", "aaaaaaaaaaaaaaaaaaaaaaaa", "zzzz qqqq xxxx", "the the the the the",
        "Erupting volcano raw power, molten lava, and the forces of the Earth, 4k, cinematic, slow motion",
        "A red car drifting on the mountain road, close view, fast movement",
        "a red car is drifting on the mountain road, close view, fast movement",
        "A car moving on the road from the sea to the mountains, drone shot, golden hour",
        "Luminescent jellyfish swims underwater, neon, 4k, macro shot",
    ]
    # Generated prompts (another seed than the corpus: unseen combinations).
    for i in range(90):
        parts = [rng.choice(["a", "an", "the", "A", "The", "some", "three"]), rng.choice(ADJECTIVES),
                 rng.choice(SUBJECTS), rng.choice(ACTIONS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(PLACES))
        s = " ".join(parts)
        for _ in range(rng.randint(0, 4)):
            s += rng.choice([", ", " , ", ",", "; ", " - ", "  "]) + rng.choice(STYLES)
        if i % 7 == 0:
            s = s.upper()
        if i % 11 == 0:
            s = "  " + s + "  "
        prompts.append(s)
    # Over-long prompts: past 128 tokens (truncation keeps 127 ids and </s>).
    long1 = ", ".join(GALLERY) + ", " + ", ".join(STYLES)
    prompts.append(long1)
    prompts.append(" ".join(rng.choice(SUBJECTS + ADJECTIVES) for _ in range(200)))
    prompts.append("word " * 130)
    prompts.append("a" * 600)
    prompts.append("🚗" * 200)
    prompts.append("x " * 126 + "</s>")
    return prompts


def bucket_row(num_buckets, max_distance, max_offset):
    """Buckets of the relative positions -max_offset..max_offset (key - query)."""
    return relative_position_bucket(torch.arange(-max_offset, max_offset + 1), num_buckets, max_distance)


# ---------------------------------------------------------------------------------------------
# 4. The T5 encoder, from the T5 description
# ---------------------------------------------------------------------------------------------

def relative_position_bucket(relative_position, num_buckets, max_distance):
    """Bidirectional T5 buckets for relative_position = key - query (long tensor). Half the
    buckets per sign (positive offsets in the upper half); offsets below a quarter of the
    buckets are exact; larger ones are log-spaced up to max_distance, truncated to an integer
    and capped at the last bucket. The log is taken in f32, as the reference implementation does."""
    half = num_buckets // 2
    ret = (relative_position > 0).long() * half
    n = relative_position.abs()
    max_exact = half // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, half - 1))
    return ret + torch.where(is_small, n, large)


def ff_activation(feed_forward_proj):
    parts = feed_forward_proj.split("-")
    gated = parts[0] == "gated"
    name = parts[-1]
    if feed_forward_proj == "gated-gelu":
        name = "gelu_new"  # the transformers config maps gated-gelu to the tanh approximation
    acts = {
        "relu": torch.relu,
        "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
        "gelu_new": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
        "silu": lambda x: x * torch.sigmoid(x),
    }
    return gated, acts[name]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def t5_encoder(sd, cfg, input_ids, attention_mask):
    """last_hidden_state, computed in the dtype of the state dict's tensors."""
    d, h, dkv = cfg["d_model"], cfg["num_heads"], cfg["d_kv"]
    eps = cfg["layer_norm_epsilon"]
    gated, act = ff_activation(cfg["feed_forward_proj"])
    B, L = input_ids.shape
    x = sd["shared.weight"][input_ids]
    rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]
    buckets = relative_position_bucket(rel, cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    bias = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][buckets]  # [L, L, H]
    bias = bias.permute(2, 0, 1)[None]  # [1, H, Lq, Lk]
    key_ok = attention_mask.bool()[:, None, None, :]
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}."
        a = p + "layer.0.SelfAttention."
        y = rms_norm(x, sd[p + "layer.0.layer_norm.weight"], eps)
        q = (y @ sd[a + "q.weight"].T).view(B, L, h, dkv).transpose(1, 2)
        k = (y @ sd[a + "k.weight"].T).view(B, L, h, dkv).transpose(1, 2)
        v = (y @ sd[a + "v.weight"].T).view(B, L, h, dkv).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) + bias  # no 1/sqrt(d_kv) scaling in T5
        scores = scores.masked_fill(~key_ok, float("-inf"))
        o = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, L, h * dkv)
        x = x + o @ sd[a + "o.weight"].T
        f = p + "layer.1."
        y = rms_norm(x, sd[f + "layer_norm.weight"], eps)
        if gated:
            z = act(y @ sd[f + "DenseReluDense.wi_0.weight"].T) * (y @ sd[f + "DenseReluDense.wi_1.weight"].T)
        else:
            z = act(y @ sd[f + "DenseReluDense.wi.weight"].T)
        x = x + z @ sd[f + "DenseReluDense.wo.weight"].T
    return rms_norm(x, sd["encoder.final_layer_norm.weight"], eps)


def t5_config(vocab_size, feed_forward_proj):
    """Spec section 8's tiny T5, in Hugging Face config.json form."""
    return {
        "architectures": ["T5EncoderModel"],
        "model_type": "t5",
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_heads": 4,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 16,
        "layer_norm_epsilon": 1e-6,
        "feed_forward_proj": feed_forward_proj,
        "vocab_size": vocab_size,
        "dropout_rate": 0.1,
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "tie_word_embeddings": False,
    }


def init_t5(cfg, seed):
    """Every parameter non-zero; N(0, 1/fan_in) matrices, norm weights 1 +- 0.2."""
    g = torch.Generator().manual_seed(seed)
    d, dkv, h, dff = cfg["d_model"], cfg["d_kv"], cfg["num_heads"], cfg["d_ff"]
    inner = h * dkv
    gated = cfg["feed_forward_proj"].startswith("gated")

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std

    sd = {"shared.weight": randn(cfg["vocab_size"], d)}
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}."
        a = p + "layer.0.SelfAttention."
        sd[a + "q.weight"] = randn(inner, d, std=d ** -0.5)
        sd[a + "k.weight"] = randn(inner, d, std=d ** -0.5)
        sd[a + "v.weight"] = randn(inner, d, std=d ** -0.5)
        sd[a + "o.weight"] = randn(d, inner, std=inner ** -0.5)
        if i == 0:
            sd[a + "relative_attention_bias.weight"] = randn(cfg["relative_attention_num_buckets"], h)
        sd[p + "layer.0.layer_norm.weight"] = 1 + 0.2 * randn(d)
        f = p + "layer.1."
        if gated:
            sd[f + "DenseReluDense.wi_0.weight"] = randn(dff, d, std=d ** -0.5)
            sd[f + "DenseReluDense.wi_1.weight"] = randn(dff, d, std=d ** -0.5)
        else:
            sd[f + "DenseReluDense.wi.weight"] = randn(dff, d, std=d ** -0.5)
        sd[f + "DenseReluDense.wo.weight"] = randn(d, dff, std=dff ** -0.5)
        sd[f + "layer_norm.weight"] = 1 + 0.2 * randn(d)
    sd["encoder.final_layer_norm.weight"] = 1 + 0.2 * randn(d)
    return sd


def hf_key_order(sd, with_embed_tokens):
    """T5EncoderModel.state_dict() order: shared, encoder.embed_tokens (tied), blocks, final norm."""
    out = {"shared.weight": sd["shared.weight"]}
    if with_embed_tokens:
        out["encoder.embed_tokens.weight"] = sd["shared.weight"]
    for k, v in sd.items():
        if k != "shared.weight":
            out[k] = v
    return out


def write_case(name, config, weights, inputs, outputs, source, atol=1e-4, rtol=1e-3):
    d = os.path.join(PARITY_DIR, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    spec = {"name": name, "module": "t5_encoder", "config": config, "method": "forward", "args": {},
            "atol": atol, "rtol": rtol, "source": source}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    save_file(weights, os.path.join(d, "weights.safetensors"))
    save_file(inputs, os.path.join(d, "inputs.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))


# ---------------------------------------------------------------------------------------------
# 5. The Kandinsky projection (spec section 1.3; upstream condition_encoders.ConditionEncoder)
# ---------------------------------------------------------------------------------------------

def kandinsky_condition(embeddings, attention_mask, proj_w, ln_w, ln_b):
    """embeddings [B, 128, D] (the T5 output, f32), attention_mask [B, 128] long.
    A prompt whose embedding holds an inf is zeroed with its mask; projection Linear (no bias) +
    LayerNorm(eps 1e-5); masked positions zeroed; cut to max(mask count) + 1 tokens (<= 128)."""
    embeddings = embeddings.clone()
    mask = attention_mask.clone()
    bad = torch.isinf(embeddings).any(-1).any(-1)
    embeddings[bad] = 0
    mask[bad] = 0
    y = embeddings @ proj_w.T
    y = torch.nn.functional.layer_norm(y, (y.shape[-1],), ln_w, ln_b, eps=1e-5)
    y[mask == 0] = 0
    n = int(mask.sum(-1).max()) + 1
    return y[:, :n], mask[:, :n].bool()


def dump_lines(obj, f):
    """JSON with one list entry per line (readable diffs, small file)."""
    f.write("{\n")
    items = list(obj.items())
    for i, (k, v) in enumerate(items):
        end = ",\n" if i < len(items) - 1 else "\n"
        if isinstance(v, list):
            body = ",\n".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v)
            f.write(f"{json.dumps(k)}: [\n{body}\n]{end}")
        else:
            f.write(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{end}")
    f.write("}\n")


# ---------------------------------------------------------------------------------------------

def main():
    torch.set_num_threads(1)
    os.makedirs(TOK_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        model_bytes = train_spm(work)
    with open(os.path.join(TOK_DIR, "spiece.model"), "wb") as f:
        f.write(model_bytes)
    tj = convert_to_tokenizer_json(model_bytes)
    with open(os.path.join(TOK_DIR, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    ref = ReferenceTokenizer(model_bytes)
    vocab_size = ref.sp.get_piece_size() + EXTRA_IDS
    with open(os.path.join(TOK_DIR, "config.json"), "w") as f:
        json.dump(t5_config(vocab_size, "gated-silu"), f, indent=2)
        f.write("\n")

    prompts = test_prompts()
    cases = [{"text": p, "ids": ref(p)} for p in prompts]
    lengths = [len(c["ids"]) for c in cases]
    assert len(cases) >= 200, len(cases)
    assert max(lengths) > 4 * MAX_TOKENS
    unk = ref.sp.unk_id()
    n_unk = sum(1 for c in cases if unk in c["ids"])
    negatives = [
        (GALLERY[1], "blurry, low quality"),
        ("a cat", "a very long negative prompt with many words that is longer than the positive prompt"),
        (GALLERY[7], "static"),
        (GALLERY[0], GALLERY[0]),
        (prompts[-3], "short"),
        ("", "anything at all"),
        ("a dog", ""),
        (prompts[-4], prompts[-3]),
    ]
    processor = [{"text": t, "negative_text": n, **ref.processor(t, n)} for t, n in negatives]
    processor += [{"text": t, **ref.processor(t)} for t in ["", GALLERY[3], prompts[-3], prompts[-1]]]
    buckets = []
    for nb, md, off in [(32, 128, 300), (8, 16, 40), (16, 32, 70), (6, 10, 30), (64, 256, 600)]:
        buckets.append({"num_buckets": nb, "max_distance": md, "max_offset": off,
                        "buckets": bucket_row(nb, md, off).tolist()})
    with open(os.path.join(TOK_DIR, "expected_ids.json"), "w", encoding="utf-8") as f:
        dump_lines({
            "source": "test/reference/make_t5_cases.py: SentencePiece ids of spiece.model (+ </s>) with "
                      "upstream T5Tokenizer's special-token splitting; processor = upstream "
                      "T5TextConditionProcessor.encode (tokens_length 128); buckets = T5 relative-position "
                      "buckets (key - query) for L x L",
            "vocab_size": vocab_size, "pad_id": ref.pad, "eos_id": ref.eos, "unk_id": unk,
            "cases": cases, "processor": processor, "buckets": buckets,
        }, f)
    print(f"tokenizer: {ref.sp.get_piece_size()} pieces + {EXTRA_IDS} extra ids; {len(cases)} prompts, "
          f"lengths {min(lengths)}..{max(lengths)}, {n_unk} with <unk>")

    # T5 parity cases: two prompts of different lengths, padded to a common length.
    texts = ["Luminescent jellyfish swims underwater, neon, 4k", "A red car drifting"]
    ids = [ref(t) for t in texts]
    L = max(len(i) for i in ids) + 2  # both rows end in padding
    input_ids = torch.tensor([i + [0] * (L - len(i)) for i in ids], dtype=torch.int64)
    attention_mask = torch.tensor([[1] * len(i) + [0] * (L - len(i)) for i in ids], dtype=torch.int64)
    for name, proj, seed, tied in [("t5_gated_silu", "gated-silu", 5, True), ("t5_gated_gelu", "gated-gelu", 6, False)]:
        cfg = t5_config(vocab_size, proj)
        sd = init_t5(cfg, seed)
        sd64 = {k: v.double() for k, v in sd.items()}
        out = t5_encoder(sd64, cfg, input_ids, attention_mask).float()
        out32 = t5_encoder(sd, cfg, input_ids, attention_mask)
        # Masking matters: the same rows without the mask differ.
        unmasked = t5_encoder(sd64, cfg, input_ids, torch.ones_like(attention_mask)).float()
        moved = (unmasked - out).abs().max().item() / out.abs().max().item()
        assert moved > 0.05, moved
        write_case(
            name, cfg, hf_key_order(sd, tied), {"input_ids": input_ids, "attention_mask": attention_mask}, {"out": out},
            "test/reference/make_t5_cases.py (T5 encoder written from spec section 7; float64 from the f32 weights); "
            f"feed_forward_proj {proj}; 2 prompts of {len(ids[0])} and {len(ids[1])} tokens padded to {L}"
            + ("; weights hold shared.weight and the tied encoder.embed_tokens.weight" if tied else "; weights hold shared.weight only"))
        print(f"{name}: L={L} max|out|={out.abs().max().item():.3f} f32 err={(out32 - out).abs().max().item():.2e} "
              f"unmasked moves {moved:.2f}")

    # Conditioning: projection + masking + truncation + the inf rule, with a tiny context dim.
    g = torch.Generator().manual_seed(7)
    D, B = 32, 3
    emb = torch.randn(B, MAX_TOKENS, D, generator=g)
    mask = torch.zeros(B, MAX_TOKENS, dtype=torch.int64)
    mask[0, :9] = 1
    mask[1, :5] = 1
    mask[2, :12] = 1
    emb[2, 3, 7] = float("inf")  # row 2 is zeroed with its mask
    proj_w = torch.randn(D, D, generator=g) * D ** -0.5
    ln_w = 1 + 0.2 * torch.randn(D, generator=g)
    ln_b = 0.1 * torch.randn(D, generator=g)
    ctx, ctx_mask = kandinsky_condition(emb.double(), mask, proj_w.double(), ln_w.double(), ln_b.double())
    full = torch.ones(1, MAX_TOKENS, dtype=torch.int64)
    ctx_full, ctx_full_mask = kandinsky_condition(emb[:1].double(), full, proj_w.double(), ln_w.double(), ln_b.double())
    save_file({
        "embeddings": emb, "attention_mask": mask, "t5.0.weight": proj_w, "t5.1.weight": ln_w, "t5.1.bias": ln_b,
        "context": ctx.float(), "context_mask": ctx_mask,
        "full.attention_mask": full, "full.context": ctx_full.float(), "full.context_mask": ctx_full_mask,
    }, os.path.join(TOK_DIR, "conditioning.safetensors"), {
        "source": "test/reference/make_t5_cases.py kandinsky_condition (spec section 1.3): float64 from f32",
    })
    print(f"conditioning: context {tuple(ctx.shape)}, full-mask context {tuple(ctx_full.shape)}")


if __name__ == "__main__":
    main()
