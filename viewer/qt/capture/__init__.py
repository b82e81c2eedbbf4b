"""viewer/qt/capture"""
