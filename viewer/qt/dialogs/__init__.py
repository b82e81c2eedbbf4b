"""viewer/qt/dialogs"""
