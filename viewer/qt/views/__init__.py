"""viewer/qt/views"""
