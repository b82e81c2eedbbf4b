"""viewer/store"""
