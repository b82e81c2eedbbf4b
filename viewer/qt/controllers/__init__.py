"""viewer/qt/controllers"""
