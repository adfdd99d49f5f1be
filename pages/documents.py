"""Documents page (placeholder until the capability lands)."""

import streamlit as st

st.title("Documents")
st.info("Write SMS documents with personalisation, a live segment meter and previews.")
