"""Recall@20 of R3's possible first stages on nq dev: why `ragenv train r3` defaults to BM25.

Usage: RAGENV_DATA=../shared/data .venv/bin/python experiments/r3_first_stage_recall.py [N_QUESTIONS]

Compares the frozen bag-of-tokens index searched with the *untrained* MiniLM vocabulary head
(both activations) and with the query's own wordpieces, against BM25 (bm25s). Last, how close
the untrained R3 with the default ``bm25s+dense`` first stage starts to the dense baseline
(same top 1, same top-3 set).
"""
import sys

import numpy as np

from ragenv.agents.r3 import R3Config
from ragenv.agents.r3.model import BagOfTokensIndex, R3Encoder
from ragenv.agents.r3.training import R3Retriever
from ragenv.data import load_dataset
from ragenv.encoder import resolve_encoder_path
from ragenv.index import make_index


def recall(dataset, questions, rows) -> float:
    return float(np.mean([any(dataset.corpus[r].id in q.gold_passage_ids for r in rr if r >= 0)
                          for q, rr in zip(questions, rows)]))


def main(n: int = 100, m: int = 20) -> None:
    dataset = load_dataset("nq")
    questions = dataset.split("dev")[:n]
    texts = [q.question for q in questions]
    for activation in ("elu1p", "relu_log1p"):
        encoder = R3Encoder(resolve_encoder_path("all-MiniLM-L6-v2"), activation=activation)
        index = BagOfTokensIndex(dataset.corpus, encoder, "all-MiniLM-L6-v2")
        live = encoder.encode_numpy(texts, "query", ("vocab",))["vocab"]
        print(f"bag-of-tokens, untrained vocabulary head ({activation}): recall@{m} "
              f"{recall(dataset, questions, index.search_vectors(live, m)[0]):.2f}")
    words = encoder.bag_of_tokens(texts, "query").toarray()
    print(f"bag-of-tokens, the query's own wordpieces: recall@{m} "
          f"{recall(dataset, questions, index.search_vectors(words, m)[0]):.2f}")
    print(f"BM25 (bm25s): recall@{m} "
          f"{recall(dataset, questions, make_index('bm25s', dataset.corpus).search(texts, m)[0]):.2f}")
    retriever = R3Retriever(R3Config(first_stage="bm25s+dense"), dataset.corpus)
    retriever.encoder.module.eval()
    r3 = retriever.retrieve(questions, 3)
    dense = retriever.first_stage[1].search(texts, 3)[0]  # the frozen starting dense index
    print(f"untrained R3, bm25s+dense: same top 1 as dense for {int(np.sum(r3[:, 0] == dense[:, 0]))} "
          f"of {len(questions)}, "
          f"same top-3 set for {sum(set(a) == set(b) for a, b in zip(r3.tolist(), dense.tolist()))}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
