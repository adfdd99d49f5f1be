"""Mailings page (placeholder until the capability lands)."""

import streamlit as st

st.title("Mailings")
st.info("Send or schedule bulk mailings with the wizard and follow their progress.")
