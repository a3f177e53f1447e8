"""A loaded model that continues text: sampling, greedy and beam search, streaming, next-word candidates, perplexity
and bits per character."""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from .bundle import ModelCard, load_bundle
from .data import context_windows
from .errors import DecodingError, SeedError, VoiceTooSmall
from .model import ModelConfig
from .ngram import NGramModel, cache_distribution, cache_target_probabilities
from .spelling import SpellingModel, cache_log_probs, text_as_read
from .tokenizer import DEPARTURES, NEWLINE, SPECIALS, Tokenizer

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # batch sizes compiled for; others are padded up
SENTENCE_ENDS = frozenset({".", "!", "?", "...", "…", "!!", "?!", "!?"})
VOICE_HELD_OUT = 0.1  # the share of a writer's texts (the newest) on which the weight of their voice is chosen
VOICE_ORDER = 3  # a writer's texts are few: higher orders only repeat whole messages
VOICE_MAX_WEIGHT = 0.9  # weighed on a few held-out messages, a voice never replaces the server's model outright


@dataclass
class GenerationConfig:
    """Decoding options, named and defaulted as in Hugging Face's generate()."""

    max_new_tokens: int = 20  # tokens to add: words, punctuation marks and line breaks
    do_sample: bool = False  # sample the next token; otherwise greedy (or beam) search
    temperature: float = 1.0  # below 1 sharpens the distribution, above 1 flattens it
    top_k: int = 50  # sample among the k likeliest tokens (0: all)
    top_p: float = 1.0  # ... and among the smallest set holding this much probability
    repetition_penalty: float = 1.0  # above 1 discourages tokens already in the text
    no_repeat_ngram_size: int = 0  # never repeat an n-gram of this size (0: off)
    num_beams: int = 1  # beam search width (1: no beam search)
    num_return_sequences: int = 1  # continuations returned per seed
    seed: int | None = None  # makes sampling repeatable
    stop_at: str | None = None  # "sentence", "line" or "paragraph": stop after a sentence end, line break, blank line

    def validate(self) -> GenerationConfig:
        checks = [  # (valid, the option it is about, what to say)
            (
                self.max_new_tokens >= 1,
                "max_new_tokens",
                f"max_new_tokens must be at least 1, got {self.max_new_tokens}",
            ),
            (self.temperature > 0, "temperature", f"temperature must be above 0, got {self.temperature}"),
            (self.top_k >= 0, "top_k", f"top_k must be 0 or more, got {self.top_k}"),
            (0 < self.top_p <= 1, "top_p", f"top_p must be in (0, 1], got {self.top_p}"),
            (
                self.repetition_penalty > 0,
                "repetition_penalty",
                f"repetition_penalty must be above 0, got {self.repetition_penalty}",
            ),
            (
                self.no_repeat_ngram_size >= 0,
                "no_repeat_ngram_size",
                f"no_repeat_ngram_size must be 0 or more, got {self.no_repeat_ngram_size}",
            ),
            (self.num_beams >= 1, "num_beams", f"num_beams must be at least 1, got {self.num_beams}"),
            (
                self.num_return_sequences >= 1,
                "num_return_sequences",
                f"num_return_sequences must be at least 1, got {self.num_return_sequences}",
            ),
            (
                self.stop_at in (None, "sentence", "line", "paragraph"),
                "stop_at",
                f"stop_at must be 'sentence', 'line' or 'paragraph', got {self.stop_at!r}",
            ),
            (
                not (self.do_sample and self.num_beams > 1),
                None,
                "do_sample with num_beams > 1 is not supported: pick one",
            ),
            (
                self.num_beams == 1 or self.num_return_sequences <= self.num_beams,
                "num_return_sequences",
                f"num_return_sequences ({self.num_return_sequences}) must not exceed num_beams ({self.num_beams})",
            ),
            (
                self.do_sample or self.num_beams > 1 or self.num_return_sequences == 1,
                "num_return_sequences",
                "greedy search returns one sequence: set do_sample=True or num_beams for more",
            ),
        ]
        for ok, field, message in checks:
            if not ok:
                raise DecodingError(message, field)
        return self

    @classmethod
    def make(cls, config: GenerationConfig | None = None, **options) -> GenerationConfig:
        """`config` with `options` applied; unknown option names are an error."""
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            name = sorted(unknown)[0]
            raise DecodingError(
                f"unknown generation option {name!r}; known: {', '.join(f.name for f in fields(cls))}", name
            )
        return replace(config or cls(), **options).validate()

    @classmethod
    def readable(cls, **options) -> GenerationConfig:
        """What a person gets unless they choose otherwise: sampled at temperature 0.8 from the likeliest 90%.

        Greedy search, the dataclass's Hugging Face default, soon loops on a small model ("the lamp at the
        lamp at the lamp"). Asking for beams without naming `do_sample` asks for beam search."""
        searching = options.get("num_beams", 1) > 1 and "do_sample" not in options
        return cls.make(cls(do_sample=not searching, temperature=0.8, top_p=0.9), **options)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    token: str  # the next word (or mark)
    probability: float


@dataclass
class Evaluation:
    tokens: int  # tokens scored, one line break per line included
    perplexity: float  # per token; an unknown word counts as the unknown token, its spelling uncharged
    unknown: int  # tokens outside the vocabulary, scored as the unknown token
    characters: int = 0  # characters of the text as the tokenizer reads it (see spelling.text_as_read)
    bits_per_character: float = 0.0  # every character charged: an unknown word costs P(unknown) x P(its spelling)
    spelling: str = "bundle"  # whose spelling model: the bundle's, or for bundles before them, one counted from
    # their "vocabulary"


@dataclass
class ScoredText:
    """A text read for scoring: its token ids, what its unknown words' spellings cost, its length in characters."""

    ids: np.ndarray  # token ids
    spelling_log_probs: np.ndarray  # per token: log P(its spelling | unknown words before it) if unknown, else 0
    characters: int  # characters of the text as the tokenizer reads it

    def bits_per_character(self, log_probs: np.ndarray) -> float:
        """Bits per character when each token has (natural) log-probability `log_probs`, unknown words' spelling
        included: -(sum of log P(token) + sum of log P(spelling)) / ln 2 / characters."""
        nats = -(float(np.sum(log_probs)) + float(self.spelling_log_probs.sum()))
        return nats / math.log(2) / max(self.characters, 1)


class LanguageModel:
    """A trained bundle, ready to continue text. Safe to call from several threads.

    What it serves is a mixture of the bundle's neural model, its n-gram model and an n-gram cache of
    the text so far, with weights chosen on held-out text (a part may have weight 0).
    """

    def __init__(
        self,
        model,
        tokenizer: Tokenizer,
        config: ModelConfig | None,
        card: ModelCard,
        path: Path | None = None,
        ngram: NGramModel | None = None,
        neural_weight: float = 1.0,
        cache_weight: float = 0.0,
        cache_shares: Sequence[float] = (1.0,),
        xla: bool = True,
        spelling: SpellingModel | None = None,
    ):
        self.model, self.tokenizer, self.config, self.card, self.path = model, tokenizer, config, card, path
        self.ngram = ngram
        self.spelling = spelling  # the bundle's spelling model; None in bundles before them (see spelling_model)
        self._spelling_outside: SpellingModel | None = None  # conditioned on not being a vocabulary word
        neural_weight = neural_weight if model is not None and ngram is not None else float(model is not None)
        # the parts' shares of what is served; the n-gram model takes what the other two leave
        self.weights = {
            "neural": neural_weight,
            "cache": cache_weight,
            "ngram": max(0.0, 1.0 - neural_weight - cache_weight) if ngram is not None else 0.0,
        }
        if config is not None and config.window is not None:
            self.window: int = config.window
        elif ngram is not None:
            self.window = max(1, ngram.order - 1)
        else:
            raise ValueError("a language model needs a neural model with its config, an n-gram model, or both")
        self.cache_shares = tuple(cache_shares)  # within the cache, the share of its orders 1, 2, ...
        self.voice: NGramModel | None = None  # one writer's words (with_voice), mixed in with weights["voice"]
        self.xla = xla  # see load()
        self._compiled: dict[int, object] = {}
        self._lock = threading.Lock()
        self._banned = np.array([0, 1])  # padding and unknown are never generated

    @classmethod
    def load(cls, path: str | Path, xla: bool = True) -> LanguageModel:
        """The bundle at `path`. With `xla`, its forward pass is compiled by XLA: faster per word but slower to
        load, and the compiled code stays in the process after the model is dropped, so a process that keeps
        loading models (the bot) passes False (README, How it works; bench/results/reloads.md)."""
        b = load_bundle(path)
        return cls(
            b.model,
            b.tokenizer,
            b.config,
            b.card,
            Path(path),
            b.ngram,
            neural_weight=b.neural_weight,
            cache_weight=b.cache_weight,
            cache_shares=b.cache_shares,
            xla=xla,
            spelling=b.spelling,
        )

    def warm_up(self) -> LanguageModel:
        """Compile the single-sequence forward pass now, so the first suggestion comes at full speed."""
        if self.model is not None:
            self._function(1)
        return self

    def with_voice(self, texts: Sequence[str]) -> LanguageModel:
        """This model bent toward one writer's words: `texts` (theirs, oldest first) counted into an n-gram model
        of this model's vocabulary and mixed into what is served, with the weight that scores the newest tenth of
        them best (chosen as training chooses the mixture: mixture_weights on held-out text, the voice counted
        without it; at most VOICE_MAX_WEIGHT). The returned model shares this one's weights and tables; this one
        is unchanged.

        Raises VoiceTooSmall when there are too few texts to count a voice and hold some out.
        """
        from .training import MIX_TOKENS, mixture_weights  # training imports this module

        texts = [t.strip() for t in texts if t.strip()]
        held = max(1, round(len(texts) * VOICE_HELD_OUT))
        if len(texts) < 2 or len(texts) - held < 1:
            raise VoiceTooSmall(f"{len(texts)} message(s) are too few to imitate: at least 2 are needed")
        counted, held_out = self._voice_ids(texts[:-held]), self._voice_ids(texts[-held:])[-MIX_TOKENS:]
        if len(counted) == 0 or len(held_out) == 0:
            raise VoiceTooSmall("those messages have no words to imitate")
        V = len(self.tokenizer)
        served = np.exp(self.target_log_probs(held_out))
        voice = NGramModel.fit(counted, V, VOICE_ORDER).target_probabilities(held_out)
        (_, voice_weight), _ = mixture_weights(served, voice)
        voice_weight = min(voice_weight, VOICE_MAX_WEIGHT)
        bent = copy.copy(self)  # shares the network, its compiled passes, its lock and its tables
        bent.voice = NGramModel.fit(self._voice_ids(texts), V, VOICE_ORDER)  # then served from all of them
        bent.weights = {name: w * (1.0 - voice_weight) for name, w in self.weights.items() if name != "voice"}
        bent.weights["voice"] = voice_weight
        return bent

    def _voice_ids(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids of texts one after another, each ending a line, as a corpus reads its messages."""
        text = "\n".join(texts) + "\n"
        return np.array(self.tokenizer.encode(self.tokenizer.split(text)), np.int64)

    # --- what is served: the log-probability of every next token
    def next_log_probs(self, rows: Sequence[Sequence[int]], written: Sequence[int] | None = None) -> np.ndarray:
        """log P(next token | row) (rows, vocab) for each row of token ids, from the neural model, the
        n-gram model, the cache or their mixture.

        The cache counts the first `written[i]` tokens of row i (default: all): when generating, only what a
        person wrote, since a cache of the model's own words makes every word it picks likelier again, and
        it loops.
        """
        w = self.weights
        neural = _log_softmax(self.logits(self._windows(rows)).astype(np.float64)) if w["neural"] > 0 else None
        ngram = cache = voice = None
        with np.errstate(divide="ignore"):
            if w["ngram"] > 0 and self.ngram is not None:
                ngram = np.log(self.ngram.distributions([list(r) for r in rows]))
            if w.get("voice", 0.0) > 0 and self.voice is not None:
                voice = np.log(self.voice.distributions([list(r) for r in rows]))
            if w["cache"] > 0:
                counted: Sequence[int | None] = written or [None] * len(rows)
                V, shares = len(self.tokenizer), self.cache_shares
                cache = np.log(
                    np.stack([cache_distribution(r, V, shares, counted=n) for r, n in zip(rows, counted, strict=True)])
                )
        return mix_log_probs(
            {
                "neural": (w["neural"], neural),
                "ngram": (w["ngram"], ngram),
                "cache": (w["cache"], cache),
                "voice": (w.get("voice", 0.0), voice),
            }
        )

    # --- the forward pass
    def logits(self, windows: np.ndarray) -> np.ndarray:
        """Next-token logits (batch, vocab) for int32 windows (batch, window), in compiled chunks."""
        out = []
        for start in range(0, len(windows), BATCH_BUCKETS[-1]):
            chunk = windows[start : start + BATCH_BUCKETS[-1]]
            size = next(b for b in BATCH_BUCKETS if b >= len(chunk))
            padded = np.zeros((size, self.window), np.int32)
            padded[: len(chunk)] = chunk
            out.append(np.asarray(self._function(size)(padded))[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, len(self.tokenizer)), np.float32)

    def _function(self, size: int):
        fn = self._compiled.get(size)
        if fn is None:
            with self._lock:  # trace and compile each batch size once, even under concurrent calls
                fn = self._compiled.get(size)
                if fn is None:
                    fn = self._compiled[size] = self._compile(size)
        return fn

    def _compile(self, size: int):
        import tensorflow as tf

        spec = [tf.TensorSpec((size, self.window), tf.int32)]
        probe = np.zeros((size, self.window), np.int32)

        def forward(x):
            logits = self.model(x, training=False)
            return logits[:, -1] if self.config.every_position else logits  # after the window's last token

        if self.xla:  # XLA fuses the LSTM's many small ops
            fn = tf.function(forward, input_signature=spec, jit_compile=True, autograph=False)
            try:
                fn(probe)
                return fn
            except Exception:  # noqa: BLE001 - no XLA on this platform: plain graph mode
                pass
        fn = tf.function(forward, input_signature=spec, autograph=False)
        fn(probe)
        return fn

    def _windows(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(rows), self.window), np.int32)
        for i, ids in enumerate(rows):
            tail = list(ids)[-self.window :]
            if tail:
                out[i, -len(tail) :] = tail
        return out

    # --- seeds
    def encode_seed(self, text: str | list[str], allow_empty: bool = False) -> list[int]:
        """Token ids of a seed (text or tokens); refuses an empty seed or one of only unknown words."""
        tokens = self.tokenizer.split(text) if isinstance(text, str) else text
        if not tokens and not allow_empty:
            raise SeedError("the seed is empty: give a few words to continue")
        ids = self.tokenizer.encode(tokens)
        if tokens and all(i == 1 for t, i in zip(tokens, ids, strict=True) if t not in DEPARTURES):
            script = self.tokenizer.unseen_script(text if isinstance(text, str) else "".join(text))
            if script is not None:
                raise SeedError(f"the model has never seen {script} text; train it on text in that script")
            raise SeedError(
                f"none of the seed's words are known to this model ({self.card.corpus or 'its corpus'}); "
                "try words that appear in its corpus"
            )
        return ids

    # --- generation
    def generate(self, prompt: str, config: GenerationConfig | None = None, **options) -> list[str]:
        """Continuations of `prompt` (the new text only: `prompt + continuation` reads naturally)."""
        (result,) = self.generate_batch([prompt], config, **options)
        if isinstance(result, SeedError):
            raise result
        return result

    def generate_batch(
        self, prompts: Sequence[str], config: GenerationConfig | None = None, **options
    ) -> list[list[str] | SeedError]:
        """num_return_sequences continuations for each prompt, all decoded in one batch per step.

        A prompt the model cannot continue gets its SeedError in its place: one bad seed fails only itself.
        """
        cfg = GenerationConfig.make(config, **options)
        encoded = [_seed_or_error(self, p) for p in prompts]
        good = [(p, ids) for p, ids in zip(prompts, encoded, strict=True) if not isinstance(ids, SeedError)]
        seeds = [ids for _, ids in good]
        results: list[list[list[int]]] = []
        if cfg.num_beams > 1:
            results = [self._beam_search(ids, cfg) for ids in seeds]
        elif seeds:
            rows = [list(ids) for ids in seeds for _ in range(cfg.num_return_sequences)]
            new: list[list[int]] = [[] for _ in rows]
            for step in self._steps(rows, cfg):
                for i, token in step:
                    new[i].append(token)
            n = cfg.num_return_sequences
            results = [new[i * n : (i + 1) * n] for i in range(len(seeds))]
        texts = iter(
            [
                [self.tokenizer.continuation(p).text(self.tokenizer.decode(ids)) for ids in seqs]
                for (p, _), seqs in zip(good, results, strict=True)
            ]
        )
        return [ids if isinstance(ids, SeedError) else next(texts) for ids in encoded]

    def stream(self, prompt: str, config: GenerationConfig | None = None, **options) -> Iterator[str]:
        """The continuation of `prompt` piece by piece, as each token is chosen."""
        cfg = GenerationConfig.make(config, **options)
        if cfg.num_beams > 1 or cfg.num_return_sequences > 1:
            raise DecodingError("streaming produces one sequence: use num_beams=1 and num_return_sequences=1")
        prompt_tokens = self.tokenizer.split(prompt)
        ids = self.encode_seed(prompt_tokens)
        spacing = self.tokenizer.continuation(prompt, prompt_tokens)
        for step in self._steps([list(ids)], cfg):
            yield spacing.add(self.tokenizer.vocab[step[0][1]])

    def _steps(self, rows: list[list[int]], cfg: GenerationConfig) -> Iterator[list[tuple[int, int]]]:
        """Decode all rows together; each step yields (row, token) for the rows still going."""
        rng = np.random.default_rng(cfg.seed)
        live = list(range(len(rows)))
        written = [len(row) for row in rows]
        for _ in range(cfg.max_new_tokens):
            # 1. one forward pass over the last `window` tokens of every live row (mixed with the n-gram model)
            scores = self.next_log_probs([rows[i] for i in live], [written[i] for i in live])
            # 2. shape the scores: banned tokens, repetition penalty, n-gram blocking
            self._process(scores, [rows[i] for i in live], cfg)
            # 3. choose each row's next token: sampled, or the likeliest
            chosen = _sample(scores, cfg, rng) if cfg.do_sample else scores.argmax(axis=1)
            step = []
            for i, token in zip(live, chosen.tolist(), strict=True):
                rows[i].append(token)
                step.append((i, token))
            yield step
            # 4. rows that reached their stop point drop out
            live = [i for i in live if not self._stops(rows[i], cfg)]
            if not live:
                return

    def _stops(self, ids: Sequence[int], cfg: GenerationConfig) -> bool:
        """Whether text ending with `ids` has reached the stop point (a paragraph: two line breaks in a row)."""
        word = self.tokenizer.vocab[ids[-1]]
        if cfg.stop_at == "paragraph":
            return word == NEWLINE and len(ids) > 1 and self.tokenizer.vocab[ids[-2]] == NEWLINE
        return (cfg.stop_at == "line" and word == NEWLINE) or (cfg.stop_at == "sentence" and word in SENTENCE_ENDS)

    def _process(self, scores: np.ndarray, rows: list[list[int]], cfg: GenerationConfig) -> None:
        scores[:, self._banned] = -np.inf
        if cfg.repetition_penalty != 1.0:
            for r, ids in enumerate(rows):
                seen = np.unique(ids)
                s = scores[r, seen]
                scores[r, seen] = np.where(s < 0, s * cfg.repetition_penalty, s / cfg.repetition_penalty)
        n = cfg.no_repeat_ngram_size
        if n > 0:
            for r, ids in enumerate(rows):
                if len(ids) >= n:
                    prefix = tuple(ids[len(ids) - n + 1 :])
                    banned = [ids[j + n - 1] for j in range(len(ids) - n + 1) if tuple(ids[j : j + n - 1]) == prefix]
                    scores[r, banned] = -np.inf

    def _beam_search(self, seed: list[int], cfg: GenerationConfig) -> list[list[int]]:
        beams = [(list(seed), 0.0)]  # (ids, sum of log-probabilities of the new tokens)
        finished: list[tuple[list[int], float]] = []
        for _ in range(cfg.max_new_tokens):
            # 1. score every continuation of every beam
            scores = self.next_log_probs([ids for ids, _ in beams], [len(seed)] * len(beams))
            self._process(scores, [ids for ids, _ in beams], cfg)
            logp = scores - _logsumexp(scores)
            total = np.array([s for _, s in beams])[:, None] + logp
            # 2. keep the best 2 x num_beams, moving stopped ones to `finished`
            order = np.argsort(-total, axis=None)[: 2 * cfg.num_beams]
            next_beams: list[tuple[list[int], float]] = []
            for flat in order:
                b, token = divmod(int(flat), total.shape[1])
                if not np.isfinite(total[b, token]):
                    continue
                entry = (beams[b][0] + [token], float(total[b, token]))
                (finished if self._stops(entry[0], cfg) else next_beams).append(entry)
                if len(next_beams) == cfg.num_beams:
                    break
            beams = next_beams
            # 3. done once enough hypotheses ended and no open beam can beat them
            if not beams or (len(finished) >= cfg.num_beams and max(s for _, s in beams) < min(s for _, s in finished)):
                break
        ranked = sorted(finished + beams, key=lambda e: -e[1] / max(1, len(e[0]) - len(seed)))
        return [ids[len(seed) :] for ids, _ in ranked[: cfg.num_return_sequences]]

    # --- next-word candidates
    def candidates(self, text: str, k: int = 10, partial: bool = False) -> list[Candidate]:
        """The k likeliest next tokens after `text`, with their probabilities.

        With `partial`, a last word typed without a following space is taken as unfinished: the
        candidates are the vocabulary's words that start with it, ranked by the model.
        """
        if k < 1:
            raise DecodingError(f"k must be at least 1, got {k}", "k")
        tokens = self.tokenizer.split(text)
        stem = self.tokenizer.unfinished_word(text, tokens) if partial else ""
        if stem:
            tokens.pop()
        ids = self.tokenizer.encode(tokens)  # unknown words are context too: no refusal here
        probs = np.exp(self.next_log_probs([ids])[0])
        probs[self._banned] = 0.0
        probs[[i for i in (self.tokenizer.index.get(t) for t in DEPARTURES) if i is not None]] = 0.0  # not words
        if stem:
            allowed = np.array([w.startswith(stem) for w in self.tokenizer.vocab])
            probs = np.where(allowed, probs, 0.0)
        top = np.argsort(-probs)[:k]
        return [Candidate(self.tokenizer.vocab[i], float(probs[i])) for i in top if probs[i] > 0]

    def complete(
        self,
        text: str,
        config: GenerationConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
        **options,
    ) -> str | None:
        """What to append to `text`: the rest of an unfinished last word, then a continuation.

        Decodes token by token; returns None as soon as `should_stop()` is true (say, a newer
        keystroke made this suggestion useless), so the model is free again within one step.
        """
        stem = self.tokenizer.unfinished_word(text)
        rest = ""
        if stem:
            best = self.candidates(text, 1, partial=True)
            if best and best[0].token.startswith(stem):
                rest = best[0].token[len(stem) :]
        pieces = [rest]
        try:
            for piece in self.stream(text + rest, config, **options):
                if should_stop is not None and should_stop():
                    return None
                pieces.append(piece)
        except SeedError:
            pass  # nothing known to continue from: just the rest of the word
        return "".join(pieces)

    # --- evaluation
    def perplexity(self, text: str, batch_size: int = 512) -> Evaluation:
        """Perplexity and bits per character of what is served on `text`: every token scored from the tokens
        before it, and every unknown word's spelling by the spelling model."""
        scored = self.read_for_scoring(text)
        ids = scored.ids
        if len(ids) == 0:
            raise SeedError("the text to evaluate is empty")
        log_p = self.target_log_probs(ids, batch_size)
        return Evaluation(
            int(len(ids)),
            math.exp(-float(log_p.mean())),
            int((ids == 1).sum()),
            scored.characters,
            scored.bits_per_character(log_p),
            "bundle" if self.spelling is not None else "vocabulary",
        )

    def read_for_scoring(self, text: str) -> ScoredText:
        """`text`'s token ids, the log-probability of each unknown word's spelling, and its characters. An unknown
        word's spelling is scored given the unknown words before it (spelling.cache_log_probs): a name the text
        repeats is spelled out once."""
        tokens = self.tokenizer.split(text)
        ids = np.array(self.tokenizer.encode(tokens), np.int32)
        spelling = np.zeros(len(ids))
        unknown = np.flatnonzero(ids == 1)
        if len(unknown):
            words = [tokens[i] for i in unknown]
            spelling[unknown] = cache_log_probs(words, self.spelling_model().log_probs(words))
        return ScoredText(ids, spelling, len(text_as_read(self.tokenizer, text, tokens)))

    def spelling_model(self) -> SpellingModel:
        """P(a word's spelling | it is not in the vocabulary): the bundle's spelling model, or for a bundle saved
        before them, one counted now from its vocabulary (each word once; milliseconds)."""
        with self._lock:
            if self._spelling_outside is None:
                words = [w for w in self.tokenizer.vocab if w not in SPECIALS]
                spelling = self.spelling if self.spelling is not None else SpellingModel.fit(words)
                self._spelling_outside = spelling.excluding([*self.tokenizer.vocab, ""])
            return self._spelling_outside

    def target_log_probs(self, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """log P(ids[i] | ids[:i]) of what is served, for every position."""
        parts = self.target_log_probs_by_part(ids, batch_size)
        return mix_log_probs({name: (self.weights.get(name, 0.0), log_p) for name, log_p in parts.items()})

    def target_log_probs_by_part(self, ids: np.ndarray, batch_size: int = 512) -> dict[str, np.ndarray]:
        """log P(ids[i] | ids[:i]) from each part this model has: "neural", "ngram", "cache" (and "voice")."""
        parts = {}
        if self.model is not None:
            parts["neural"] = self.neural_target_log_probs(ids, batch_size)
        with np.errstate(divide="ignore"):
            if self.ngram is not None:
                parts["ngram"] = np.log(self.ngram.target_probabilities(ids))
            parts["cache"] = np.log(cache_target_probabilities(ids, len(self.tokenizer), self.cache_shares))
            if self.voice is not None:
                parts["voice"] = np.log(self.voice.target_probabilities(ids))
        return parts

    def neural_target_log_probs(self, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
        windows = context_windows(ids, self.window)
        out = np.empty(len(ids))
        for start in range(0, len(ids), batch_size):
            scores = self.logits(windows[start : start + batch_size])  # (batch, vocab) float32: the big array
            target = ids[start : start + batch_size]
            top = scores.max(axis=1, keepdims=True)
            picked = scores[np.arange(len(target)), target] - top[:, 0]
            np.exp(np.subtract(scores, top, out=scores), out=scores)  # in place: no float64 copies of the batch
            out[start : start + len(target)] = picked - np.log(scores.sum(axis=1, dtype=np.float64))
        return out


def mix_log_probs(parts: dict[str, tuple[float, np.ndarray | None]]) -> np.ndarray:
    """log(sum of weight * P) over the parts {name: (weight, log P)}; absent or unweighted parts are left
    out and the weights of the rest renormalised."""
    used = [(w, log_p) for w, log_p in parts.values() if log_p is not None and w > 0]
    if not used:
        raise ValueError("nothing to mix: no part with a weight")
    total = sum(w for w, _ in used)
    mixed = math.log(used[0][0] / total) + used[0][1]
    for w, log_p in used[1:]:
        mixed = np.logaddexp(mixed, math.log(w / total) + log_p)
    return mixed


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - _logsumexp(x)


def _seed_or_error(model: LanguageModel, prompt: str) -> list[int] | SeedError:
    try:
        return model.encode_seed(prompt)
    except SeedError as e:
        return e


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over each row, as a (rows, 1) column."""
    top = np.max(x, axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _sample(scores: np.ndarray, cfg: GenerationConfig, rng: np.random.Generator) -> np.ndarray:
    scores = scores / cfg.temperature
    if 0 < cfg.top_k < scores.shape[1]:
        kth = np.partition(scores, -cfg.top_k, axis=1)[:, -cfg.top_k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    if cfg.top_p < 1.0:
        order = np.argsort(-probs, axis=1)
        sorted_probs = np.take_along_axis(probs, order, axis=1)
        outside = np.cumsum(sorted_probs, axis=1) - sorted_probs >= cfg.top_p  # keeps at least one token
        np.put_along_axis(probs, order, np.where(outside, 0.0, sorted_probs), axis=1)
        probs /= probs.sum(axis=1, keepdims=True)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random(len(probs))[:, None] * cumulative[:, -1:]
    return (cumulative < draws).sum(axis=1).clip(max=probs.shape[1] - 1)
