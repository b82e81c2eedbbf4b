"""viewer/qt/overlays"""
