"""R3 reference retriever: heads, bag-of-tokens index, thresholds, training, resume, evaluation, bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TEST_LLM

TINY = dict(epochs=2, batch_size=4, num_candidates=5, k=2, checkpoint_every=1)


@pytest.fixture(scope="module")
def train_env(short_dataset, small_env):
    """RAGRetrieval-v0 on the 8 train questions of the small folder (40-word passages: short prompts keep the
    LLM feedback cheap), sharing small_env's SmolLM2."""
    import gymnasium as gym

    env = gym.make("RAGRetrieval-v0", dataset=str(short_dataset), split="train", llm=TEST_LLM, features=False,
                   k=2, num_candidates=5, scorer=small_env.unwrapped.scorer)
    yield env
    env.close()


@pytest.fixture(scope="module")
def trained(train_env, tmp_path_factory):
    from ragenv.agents.r3 import R3Config, train

    folder = tmp_path_factory.mktemp("r3") / "agent"
    messages = []
    agent = train(train_env, R3Config(**TINY), folder, progress=False, log=messages.append)
    return agent, folder, messages


def test_dense_head_starts_as_the_dense_baseline_and_vocab_head_is_sparse_lexical_shape(small_env):
    from ragenv.agents.r3.model import R3Encoder
    from ragenv.encoder import Encoder, resolve_encoder_path

    texts = [q.question for q in small_env.unwrapped.questions[:4]]
    r3 = R3Encoder(resolve_encoder_path("all-MiniLM-L6-v2"))
    out = r3.encode_numpy(texts, "query", ("dense", "vocab"))
    frozen = Encoder("all-MiniLM-L6-v2")
    reference = frozen.encode(texts)
    cosine = np.sum(out["dense"] * reference, axis=1)
    tolerance = 1e-5 if "float32" in str(frozen.torch_dtype) else 2e-2  # the frozen encoder may run in bf16
    assert np.all(cosine > 1 - tolerance), cosine
    assert out["vocab"].shape == (4, 30522) and np.all(out["vocab"] >= 0)
    bow = r3.bag_of_tokens(["the cat sat"], "query")
    ids = r3.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]
    assert sorted(bow.indices.tolist()) == sorted(set(ids)) and np.all(bow.data == 1.0)


def test_bag_of_tokens_index_finds_passages_by_their_wordpieces(small_env):
    from ragenv.agents.r3.model import BagOfTokensIndex, R3Encoder
    from ragenv.encoder import resolve_encoder_path

    base = small_env.unwrapped
    r3 = R3Encoder(resolve_encoder_path("all-MiniLM-L6-v2"))
    index = BagOfTokensIndex(base.corpus, r3, "all-MiniLM-L6-v2")
    assert index.matrix.shape == (len(base.corpus), 30522)
    target = base.corpus[7]
    query = r3.bag_of_tokens([target.contents], "passage").toarray()  # the passage's own wordpieces
    rows, scores = index.search_vectors(query, 3)
    assert rows[0, 0] == 7 and scores[0, 0] == pytest.approx(float(query.sum()))
    again = BagOfTokensIndex(base.corpus, r3, "all-MiniLM-L6-v2")  # built once, then read from the cache
    assert again.path == index.path and (again.matrix != index.matrix).nnz == 0


@pytest.mark.unit
def test_thresholds_follow_the_documented_rule():
    from ragenv.agents.r3 import R3Config, thresholds

    config = R3Config(threshold_margin=0.5, positive_quantile=0.75, negative_quantile=0.5)
    closed = np.array([-5.0, -1.0], dtype=np.float32)
    candidates = np.array([[-6, -4, -3, -2, np.nan], [-3, -2.5, -2, -1.8, -1.6]], dtype=np.float32)
    upper, lower = thresholds(closed, candidates, config)
    q75 = np.nanquantile(candidates, 0.75, axis=1)
    q50 = np.nanquantile(candidates, 0.5, axis=1)
    assert upper[0] == pytest.approx(max(-4.5, q75[0])) and lower[0] == pytest.approx(min(-4.5, q50[0]))
    assert upper[1] == pytest.approx(-0.5) and lower[1] == pytest.approx(q50[1])  # closed-book is already good
    assert np.all(lower <= upper)

    window = R3Config(threshold_margin=0.5, positive_quantile=0.75, negative_quantile=0.5, positive_window=0.5)
    near = np.array([[-6, -4, -2.8, -2.6, -2], [-3, -2.5, -2, -1.8, -1.6]], dtype=np.float32)
    plain_upper, plain_lower = thresholds(closed, near, config)
    upper_w, lower_w = thresholds(closed, near, window)
    assert upper_w[0] == pytest.approx(-2.5)  # within 0.5 nats of the best candidate (-2)
    assert np.sum(near[0] >= upper_w[0]) == 1 and np.sum(near[0] >= plain_upper[0]) == 2  # the runner-up drops out
    assert upper_w[1] == pytest.approx(-0.5)  # the closed-book margin still binds when it is higher
    assert np.array_equal(lower_w, plain_lower)  # the window moves T+ only


@pytest.mark.unit
def test_label_batch_takes_positives_above_t_plus_and_the_live_models_hardest_negatives_below_t_minus():
    """Pure labelling: no model. A question without a positive is left out; -1 rows are never labelled."""
    from ragenv.agents.r3 import R3Config
    from ragenv.agents.r3.losses import label_batch, ranked_lists
    from ragenv.data import Question

    batch = [Question(id=f"q{i}", question=f"question {i}", answers=("a",), gold_passage_ids=(), split="train")
             for i in range(3)]
    rows = np.array([[10, 11, 12, 13], [20, 21, 22, -1], [30, 31, 32, 33]])
    logprobs = np.array([[-1.0, -5.0, -6.0, -0.5], [-4.0, -4.0, -4.0, np.nan], [-9.0, -9.0, -1.0, -9.0]])
    order = np.array([[2, 1, 0, 3], [0, 1, 2, 3], [3, 1, 0, 2]])  # the live ranking, best first
    upper = {"q0": -1.0, "q1": -2.0, "q2": -1.0}
    lower = {"q0": -5.0, "q1": -5.0, "q2": -9.0}
    config = R3Config(hard_negatives=1, positives=0)
    labels = label_batch(batch, rows, logprobs, order, upper, lower, config, np.random.default_rng(0))
    assert [q.id for q in labels.questions] == ["q0", "q2"]  # q1 has no candidate at or above T+
    assert sorted(labels.positives[0]) == [10, 13] and labels.positives[1] == [32]
    assert labels.negatives == [[12], [33]]  # among those at or below T-, the one the live model ranks highest
    single = label_batch(batch, rows, logprobs, order, upper, lower, R3Config(positives=1), np.random.default_rng(0))
    assert [len(p) for p in single.positives] == [1, 1] and single.positives[0][0] in (10, 13)
    lists = ranked_lists(batch, rows, logprobs, order, R3Config(listwise_candidates=2))
    assert lists.rows == [[12, 11], [20, 21], [33, 31]]  # live order, finite and valid candidates only


def test_training_learns_saves_and_evaluates_through_the_cli(trained, train_env, short_dataset):
    agent, folder, messages = trained
    training = agent.metadata["training"]
    assert training["steps"] == 4 and training["feedback_llm_sequences"] > 0
    assert training["training_llm_sequences"] == 0  # frozen first stage: every epoch after the feedback is cached
    losses = [h["loss"] for h in training["history"] if h["questions_with_positive"]]
    assert losses and all(np.isfinite(losses))
    assert any("epoch 2/2" in m for m in messages)
    assert not (folder / "checkpoint").exists()  # removed once the agent is saved
    meta = json.loads((folder / "agent.json").read_text())
    assert meta["kind"] == "r3" and meta["config"]["num_candidates"] == 5
    # act: k rows, all from R3's own first-stage candidates (BM25 and dense top 5), none twice
    base = train_env.unwrapped
    obs, info = train_env.reset(options={"question_id": base.questions[0].id})
    rows = agent.act(obs, info)
    own = set(agent.retriever.candidates(base.questions[:1])[0].tolist())
    assert agent.config.first_stage == "bm25s+dense"
    assert set(obs["candidate_ids"].tolist()) <= own
    assert rows.shape == (2,) and set(rows.tolist()) <= own
    assert len(set(rows)) == 2
    out = folder.parent / "eval.json"
    result = subprocess.run([sys.executable, "-m", "ragenv.cli", "evaluate", "--env", "RAGRetrieval-v0",
                             "--agent", f"r3:{folder}", "--dataset", str(short_dataset), "--split", "test",
                             "--limit", "4", "--k", "2", "--llm", TEST_LLM, "--output", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["n"] == 4 and np.isfinite(document["metrics"]["reward"])
    assert document["agent"] == f"r3:{folder}"


def test_loaded_agent_acts_like_the_trained_one(trained, train_env):
    from ragenv.agents.r3.agent import R3Agent

    agent, folder, _ = trained
    loaded = R3Agent.load(folder, train_env)
    questions = train_env.unwrapped.questions
    assert np.array_equal(loaded.act_batch(questions), agent.act_batch(questions))


def test_interrupted_training_resumes_to_the_same_weights(trained, train_env, tmp_path, monkeypatch):
    import torch

    import ragenv.agents.r3.training as r3_train
    from ragenv.agents.r3 import R3Config, train

    reference = torch.load(trained[1] / "model.pt", weights_only=True)
    real_step, calls = r3_train.train_step, []

    def dies_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(r3_train, "train_step", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        train(train_env, R3Config(**TINY), tmp_path / "agent", progress=False)
    assert (tmp_path / "agent" / "checkpoint" / "state.pkl").is_file()
    monkeypatch.setattr(r3_train, "train_step", real_step)
    messages = []
    agent = train(train_env, R3Config(**TINY), tmp_path / "agent", progress=False, log=messages.append)
    assert any("resuming an interrupted R3 run at step 3" in m for m in messages)
    resumed = agent.retriever.encoder.state_dict()
    assert all(torch.equal(resumed[name], value) for name, value in reference.items())


def test_semi_parametric_and_reindex_ablation_train(train_env, tmp_path):
    from ragenv.agents.r3 import R3Config, train
    from ragenv.agents.r3.agent import R3Agent

    options = dict(TINY, epochs=1, checkpoint_every=10)
    sidr = train(train_env, R3Config(first_stage="bag-of-tokens", **options), tmp_path / "sidr", progress=False)
    parts = [h for h in sidr.metadata["training"]["history"] if h["questions_with_positive"]]
    assert all({"vocab_pp", "vocab_ps", "vocab_sp"} <= set(h) for h in parts)  # the three sparse/parametric pairs
    ablation = train(train_env, R3Config(first_stage="dense-reindex", **dict(options, epochs=2)), tmp_path / "dense",
                     progress=False)
    # one re-index before epoch 2, one more when saving: the saved index is the final parameters', not epoch 2's start
    assert ablation.metadata["training"]["reindexes"] == 2 and (tmp_path / "dense" / "passages.npy").is_file()
    loaded = R3Agent.load(tmp_path / "dense", train_env)
    assert loaded.act_batch(train_env.unwrapped.questions).shape == (8, 2)
    # the saved index is the training corpus's: loaded as is over that corpus, re-encoded over any other
    from ragenv.agents.r3.first_stage import make_first_stage
    from ragenv.data import Corpus

    corpus = train_env.unwrapped.corpus
    encoder = loaded.retriever.encoder
    same = make_first_stage("dense-reindex", corpus, encoder, "all-MiniLM-L6-v2", 5)
    same.load(tmp_path / "dense")
    assert same.reindexes == 0 and np.array_equal(same.passage_matrix, np.load(tmp_path / "dense" / "passages.npy"))
    other = make_first_stage("dense-reindex", Corpus("other", [corpus[row] for row in range(7)]), encoder,
                             "all-MiniLM-L6-v2", 5)
    other.load(tmp_path / "dense")
    assert other.reindexes == 1 and other.passage_matrix.shape[0] == 7


def test_bm25_plus_dense_first_stage_is_the_union_and_starts_as_the_dense_baseline(train_env):
    """bm25s+dense: both frozen top-m lists, no row twice; untrained, the live re-rank gives the dense baseline's
    top-k (for 7 of 8 questions at least: R3 truncates passages at 160 tokens and runs in float32)."""
    from ragenv.agents.r3 import R3Config
    from ragenv.agents.r3.training import R3Retriever
    from ragenv.index import make_index

    base = train_env.unwrapped
    questions, texts = base.questions, [q.question for q in base.questions]
    retriever = R3Retriever(R3Config(**dict(TINY, first_stage="bm25s+dense")), base.corpus)
    rows = retriever.candidates(questions)
    bm25 = make_index("bm25s", base.corpus).search(texts, 5)[0]
    dense = make_index("dense", base.corpus, encoder="all-MiniLM-L6-v2").search(texts, 5)[0]
    assert rows.shape == (8, 10)
    for row, b, d in zip(rows, bm25, dense):
        kept = [int(r) for r in row if r >= 0]
        assert len(kept) == len(set(kept)) and set(kept) == set(b.tolist()) | set(d.tolist())
        assert kept[:5] == d.tolist() and np.all(row[len(kept):] == -1)  # dense first, -1 pads at the end
    top = retriever.retrieve(questions, 2)
    assert np.mean([set(t) == set(d[:2]) for t, d in zip(top.tolist(), dense.tolist())]) >= 7 / 8


def test_every_positive_is_its_own_infonce_row_and_never_another_rows_negative(train_env):
    """positives=0 (all): one row per (question, positive); a question's other positives are masked, not negatives."""
    import torch

    from ragenv.agents.r3 import R3Config
    from ragenv.agents.r3.losses import contrastive_loss
    from ragenv.agents.r3.training import R3Retriever

    base = train_env.unwrapped
    config = R3Config(**dict(TINY, positives=0))
    retriever = R3Retriever(config, base.corpus)
    retriever.encoder.module.eval()  # no dropout: the loss is a deterministic function of the embeddings
    batch = list(base.questions[:2])
    positives, negatives = [[0, 1], [2]], [[3], [4, 0]]  # passage 0 is q0's positive and q1's negative
    loss, parts = contrastive_loss(retriever, batch, positives, negatives, config)
    q = retriever.encoder.encode_numpy([x.question for x in batch], "query", ("dense",))["dense"]
    columns = [0, 1, 2, 3, 4, 0]
    p = retriever.encoder.encode_numpy([base.corpus[r].contents for r in columns], "passage", ("dense",))["dense"]
    expected = []
    for owner, target, excluded in ((0, 0, {1, 5}), (0, 1, {0, 5}), (1, 2, set())):
        logits = (q[owner] @ p.T) / config.temperature
        kept = [j for j in range(len(columns)) if j not in excluded]
        expected.append(torch.logsumexp(torch.tensor(logits[kept]), 0).item() - logits[target])
    assert float(loss.detach()) == pytest.approx(np.mean(expected), rel=1e-3) and set(parts) == {"dense"}
    from ragenv.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be negative"):
        R3Config(positives=-1)


def test_listwise_term_is_the_kl_to_the_llm_softmax_and_trains(train_env, tmp_path):
    """listwise_loss = KL(softmax(LLM log-probs / tau) || softmax(retriever scores / T)); a run with it records it."""
    from ragenv.agents.r3 import R3Config, train
    from ragenv.agents.r3.losses import listwise_loss
    from ragenv.agents.r3.training import R3Retriever
    from ragenv.errors import ConfigError

    base = train_env.unwrapped
    config = R3Config(**dict(TINY, listwise_weight=1.0, listwise_temperature=0.5))
    retriever = R3Retriever(config, base.corpus)
    retriever.encoder.module.eval()
    batch, lists = list(base.questions[:2]), [[0, 1, 2], [3, 4]]
    targets = [np.array([-1.0, -2.0, -4.0], dtype=np.float32), np.array([-3.0, -0.5], dtype=np.float32)]
    loss = float(listwise_loss(retriever, batch, lists, targets, config).detach())
    q = retriever.encoder.encode_numpy([x.question for x in batch], "query", ("dense",))["dense"]
    expected = []
    for n, rows in enumerate(lists):
        p = retriever.encoder.encode_numpy([base.corpus[r].contents for r in rows], "passage", ("dense",))["dense"]
        student = np.exp(p @ q[n] / config.temperature - np.logaddexp.reduce(p @ q[n] / config.temperature))
        teacher = np.exp(targets[n] / 0.5 - np.logaddexp.reduce(targets[n] / 0.5))
        expected.append(np.sum(teacher * np.log(teacher / student)))
    assert loss == pytest.approx(np.mean(expected), rel=1e-3) and loss > 0
    # training back-propagates it in chunks of questions: the chunks' shares add up to the whole batch's loss
    chunks = [float(listwise_loss(retriever, batch[n:n + 1], lists[n:n + 1], targets[n:n + 1], config)) for n in (0, 1)]
    assert np.mean(chunks) == pytest.approx(loss, rel=1e-3)
    agent = train(train_env, R3Config(**dict(TINY, epochs=1, listwise_weight=1.0, listwise_chunk=1)), tmp_path / "kl",
                  progress=False)
    history = agent.metadata["training"]["history"]
    assert all("listwise" in h and np.isfinite(h["loss"]) for h in history)  # every question has >= 2 candidates
    assert agent.config.listwise_weight == 1.0
    with pytest.raises(ConfigError, match="listwise"):
        R3Config(listwise_weight=-1.0)


def test_bad_configuration_and_agents_are_rejected(small_dataset, tmp_path):
    from ragenv.agents.r3 import R3Config
    from ragenv.errors import ConfigError

    with pytest.raises(ConfigError, match="first stage"):
        R3Config(first_stage="colbert")
    with pytest.raises(ConfigError, match="num_candidates >= k"):
        R3Config(k=5, num_candidates=3)
    with pytest.raises(ConfigError, match="quantile"):
        R3Config(negative_quantile=0.9, positive_quantile=0.5)
    with pytest.raises(ConfigError, match="positive_window"):
        R3Config(positive_window=-1.0)
    for args, expected in (
        (["evaluate", "--env", "RAGRetrieval-v0", "--agent", f"r3:{tmp_path}/none", "--dataset", str(small_dataset)],
         "no trained R3 agent"),
        (["train", "r3", "--output", str(tmp_path / "x"), "--first-stage", "colbert", "--dataset", str(small_dataset)],
         "unknown R3 first stage"),
    ):
        result = subprocess.run([sys.executable, "-m", "ragenv.cli", *args], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode != 0
        assert expected in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_precompute_single_passages_is_exactly_r3_feedback(short_dataset, tmp_path):
    """`ragenv precompute --single-passages` fills what R3 reads: its feedback pass then computes nothing."""
    import gymnasium as gym

    from ragenv.agents.r3 import R3Config, prepare_feedback

    env = gym.make("RAGRetrieval-v0", dataset=str(short_dataset), split="train", limit=4, llm=TEST_LLM, features=False,
                   k=2, num_candidates=5, cache=str(tmp_path / "cache.sqlite"))
    report = env.unwrapped.precompute(single_passages=True, progress=False)
    assert report["states_per_question"] == 6 and report["llm_sequences_computed"] > 0
    prepared = prepare_feedback(env, R3Config(**dict(TINY, first_stage="bm25s")), progress=False)
    assert prepared["llm_sequences_computed"] == 0
    env.close()
