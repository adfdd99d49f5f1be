"""Settings page (placeholder until the capability lands)."""

import streamlit as st

st.title("Settings")
st.info("Gateway, prices, rules text and sending limits.")
