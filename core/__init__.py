"""Bulk SMS Studio: the logic behind the pages and the CLI (never imports streamlit)."""
