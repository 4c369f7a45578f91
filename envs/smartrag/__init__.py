from ragenv.envs.smartrag.env import *  # noqa: F401,F403  (temporary, during the split)
from ragenv.envs.smartrag.env import (ACTION_NAMES, ANSWER, MALFORMED_REWARD, MAX_TEXT_ACTION, QUERY_OPTIONS,  # noqa: F401
                                      SmartRAGEnv, SmartRAGTextEnv, clean_search_query, guess_support, keyword_query,
                                      parse_text_action, words_in_query)
