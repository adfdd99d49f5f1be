"""Bulk SMS Studio: the Streamlit app. Run with `make run` (or `streamlit run app.py`)."""

import streamlit as st

from ui.auth import require_login

st.set_page_config(page_title="Bulk SMS Studio", page_icon="💬", layout="wide")

PAGES = [
    st.Page("pages/contacts.py", title="Contacts", icon="👥", default=True),
    st.Page("pages/selections.py", title="Selections", icon="🔎"),
    st.Page("pages/documents.py", title="Documents", icon="✉️"),
    st.Page("pages/mailings.py", title="Mailings", icon="🚀"),
    st.Page("pages/statistics.py", title="Statistics", icon="📊"),
    st.Page("pages/settings.py", title="Settings", icon="⚙️"),
]

require_login()  # only when [auth] is configured in secrets
navigation = st.navigation(PAGES)
st.sidebar.caption("Bulk SMS Studio · contacts → selections → documents → mailings → statistics")
navigation.run()
