"""Statistics page (placeholder until the capability lands)."""

import streamlit as st

st.title("Statistics")
st.info("See per-mailing and overall results: delivery, failures, costs and opt-outs.")
