"""viewer/qt/panels"""
