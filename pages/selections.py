"""Selections page (placeholder until the capability lands)."""

import streamlit as st

st.title("Selections")
st.info("Build selections and mini-selections of a contact database and switch them on for SMS.")
