"""The Gradio app: one module per tab, assembled in :mod:`composer.ui.app`. No model code here."""
