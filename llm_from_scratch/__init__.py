"""llm_from_scratch"""
